//! The `StateStore` contract: every case runs against the embedded store and against DynamoDB
//! through a real DynamoDB-protocol server (moto); see `support::dynamodb_endpoint`.

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
use hookline::clock::{Clock, ManualClock, SharedClock};
use hookline::store::{DynamoStore, Key, SharedStore, StateStore, StoreError};

use crate::support;

type Guard = Option<tempfile::TempDir>;

fn embedded(clock: SharedClock) -> Option<(SharedStore, Guard)> {
    let (store, dir) = support::embedded(clock);
    Some((store, Some(dir)))
}

/// A client for a local DynamoDB-protocol server: fixed region, dummy credentials, nothing
/// read from the environment (so no instance-metadata probe).
pub fn dynamo_config(endpoint: &str) -> aws_sdk_dynamodb::config::Builder {
    aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(
            "test",
            "test",
            None,
            None,
            "hookline-tests",
        ))
        .endpoint_url(endpoint)
}

pub(crate) async fn dynamodb(clock: SharedClock) -> Option<(SharedStore, Guard)> {
    let endpoint = support::dynamodb_endpoint()?;
    let table = format!("hookline-test-{:016x}", support::rand_id());
    let client = aws_sdk_dynamodb::Client::from_conf(dynamo_config(&endpoint).build());
    let store = DynamoStore::new(client, table, clock);
    store
        .create_table_if_missing()
        .await
        .expect("create the test table");
    Some((Arc::new(store), None))
}

macro_rules! contract {
    ($($case:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    let clock = std::sync::Arc::new(hookline::clock::ManualClock::new(1_700_000_000_000));
                    let Some((store, _guard)) = super::embedded(clock.clone()) else { return };
                    super::$case(store, clock).await;
                }
            )*
        }
        mod dynamodb {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    let clock = std::sync::Arc::new(hookline::clock::ManualClock::at_system_now());
                    let Some((store, _guard)) = super::dynamodb(clock.clone()).await else { return };
                    super::$case(store, clock).await;
                }
            )*
        }
    };
}

contract!(
    put_get_and_delete_round_trip,
    put_if_absent_has_exactly_one_winner_among_racing_tasks,
    expired_items_are_absent_everywhere_and_can_be_replaced,
    delete_if_removes_only_a_live_item_with_that_value,
    prefix_queries_stay_in_one_partition_in_sort_order,
    compare_and_set_writes_only_over_the_expected_value,
    typed_state_increments_exactly_once_per_call_under_contention,
    typed_state_round_trips_expires_and_lists,
    a_queued_claim_is_started_by_one_worker_requeued_dead_lettered_and_redriven,
);

/// Deferred mode's claim lifecycle: QUEUED → RUNNING (one of racing workers; a live lease
/// keeps others out, an ended one lets the next in) → QUEUED again → DEAD (reported) →
/// RUNNING on a redrive → COMPLETED; a platform redelivery meanwhile is a duplicate.
async fn a_queued_claim_is_started_by_one_worker_requeued_dead_lettered_and_redriven(
    store: SharedStore,
    clock: Arc<ManualClock>,
) {
    use hookline::idempotency::{Claim, DeadLetter, Idempotency, Start};
    use hookline::model::{EventId, Platform};
    let idem = Idempotency::new(store.clone(), clock.clone(), Platform::TamTam, "bot");
    let event = EventId::from(format!("mid.{}", crate::support::rand_id()));
    let ttl = hookline::queue::QUEUED_CLAIM_TTL;
    let Claim::Acquired(key) = idem.claim_queued(&event, ttl).await.unwrap() else {
        panic!("the first claim wins")
    };
    assert_eq!(idem.claim(&event, ttl).await.unwrap(), Claim::Queued);
    let lease = clock.now_ms() + 60_000;
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let (idem, key) = (idem.clone(), key.clone());
        tasks.push(tokio::spawn(async move {
            idem.start(&key, lease, false).await.unwrap()
        }));
    }
    let mut started = 0;
    for t in tasks {
        match t.await.unwrap() {
            Start::Started => started += 1,
            Start::Busy => {}
            Start::Completed => panic!("not answered yet"),
        }
    }
    assert_eq!(started, 1, "one worker at a time");
    assert_eq!(idem.claim(&event, ttl).await.unwrap(), Claim::Queued);
    // A worker that died: its lease ends, the next attempt takes the event.
    clock.advance(std::time::Duration::from_secs(61));
    assert_eq!(
        idem.start(&key, clock.now_ms() + 60_000, false)
            .await
            .unwrap(),
        Start::Started
    );
    idem.requeue(&key).await.unwrap();
    assert_eq!(
        idem.start(&key, clock.now_ms() + 60_000, false)
            .await
            .unwrap(),
        Start::Started
    );
    let report = DeadLetter {
        platform: Platform::TamTam,
        event_id: event.clone(),
        at_ms: clock.now_ms(),
        reason: "retry later: the model API is down".into(),
    };
    idem.dead(&key, &report).await.unwrap();
    assert_eq!(
        idem.claim(&event, ttl).await.unwrap(),
        Claim::Queued,
        "dead: still a duplicate"
    );
    let dead = Idempotency::dead_letters(&store).await.unwrap();
    assert!(dead.contains(&report), "{dead:?}");
    // Redriven from the dead-letter queue: worked again, then answered.
    assert_eq!(
        idem.start(&key, clock.now_ms() + 60_000, false)
            .await
            .unwrap(),
        Start::Started
    );
    idem.complete(&key).await.unwrap();
    assert_eq!(
        idem.start(&key, clock.now_ms() + 60_000, true)
            .await
            .unwrap(),
        Start::Completed
    );
    assert_eq!(idem.claim(&event, ttl).await.unwrap(), Claim::Completed);
}

async fn compare_and_set_writes_only_over_the_expected_value(
    store: SharedStore,
    clock: Arc<ManualClock>,
) {
    let key = Key::new("tailchat#app#state#chat#c", "cas");
    // Absent: only `None` matches.
    assert!(
        !store
            .compare_and_set(&key, Some("a"), "b", None)
            .await
            .unwrap()
    );
    assert!(store.compare_and_set(&key, None, "a", None).await.unwrap());
    assert!(!store.compare_and_set(&key, None, "x", None).await.unwrap());
    // Present: only its value matches.
    assert!(
        !store
            .compare_and_set(&key, Some("z"), "x", None)
            .await
            .unwrap()
    );
    assert!(
        store
            .compare_and_set(&key, Some("a"), "b", Some(clock.now_s() + 10))
            .await
            .unwrap()
    );
    let item = store.get(&key).await.unwrap().expect("written");
    assert_eq!(
        (item.value.as_str(), item.expires_at),
        ("b", Some(clock.now_s() + 10))
    );
    // Expired: absent for CAS too, whatever DynamoDB's TTL sweeper has done.
    clock.advance(std::time::Duration::from_secs(11));
    assert!(
        !store
            .compare_and_set(&key, Some("b"), "c", None)
            .await
            .unwrap()
    );
    assert!(
        store
            .compare_and_set(&key, None, "fresh", None)
            .await
            .unwrap()
    );
    assert_eq!(store.get(&key).await.unwrap().unwrap().value, "fresh");
    // Racing writers over the same expected value: exactly one wins.
    let mut tasks = Vec::new();
    for i in 0..12 {
        let (store, key) = (store.clone(), key.clone());
        tasks.push(tokio::spawn(async move {
            store
                .compare_and_set(&key, Some("fresh"), &format!("w{i}"), None)
                .await
                .unwrap()
        }));
    }
    let mut wins = 0;
    for t in tasks {
        wins += usize::from(t.await.unwrap());
    }
    assert_eq!(wins, 1);
}

fn state(store: &SharedStore, clock: &Arc<ManualClock>, pk: &str) -> hookline::bot::State {
    hookline::bot::State::new(store.clone(), clock.clone(), pk)
}

async fn typed_state_increments_exactly_once_per_call_under_contention(
    store: SharedStore,
    clock: Arc<ManualClock>,
) {
    let counter = state(&store, &clock, "tamtam#bot#state#chat#42");
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let counter = counter.clone();
        tasks.push(tokio::spawn(async move {
            counter.increment("presses", 1, None).await.unwrap()
        }));
    }
    let mut seen = Vec::new();
    for t in tasks {
        seen.push(t.await.unwrap());
    }
    seen.sort_unstable();
    // Every call saw its own value: no lost update, no double count.
    assert_eq!(seen, (1..=16).collect::<Vec<i64>>());
    assert_eq!(counter.get::<i64>("presses").await.unwrap(), Some(16));
    assert_eq!(counter.increment("presses", -6, None).await.unwrap(), 10);
}

async fn typed_state_round_trips_expires_and_lists(store: SharedStore, clock: Arc<ManualClock>) {
    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Vote {
        option: u8,
        label: String,
    }
    let chat = state(&store, &clock, "dingtalk#robot#state#chat#cid");
    let user = state(&store, &clock, "dingtalk#robot#state#user#cid");
    let ann = Vote {
        option: 2,
        label: "sushi ✓".into(),
    };
    chat.put("vote#ann", &ann, None).await.unwrap();
    assert_eq!(chat.get::<Vote>("vote#ann").await.unwrap(), Some(ann));
    // Scopes do not mix, even with the same id.
    assert_eq!(user.get::<Vote>("vote#ann").await.unwrap(), None);
    assert!(chat.put_if_absent("once", &1, None).await.unwrap());
    assert!(!chat.put_if_absent("once", &2, None).await.unwrap());
    assert!(
        !chat
            .compare_and_set("once", Some(&5), &6, None)
            .await
            .unwrap()
    );
    assert!(
        chat.compare_and_set("once", Some(&1), &6, None)
            .await
            .unwrap()
    );
    assert_eq!(chat.get::<i32>("once").await.unwrap(), Some(6));
    // A wrong type is a clear error, not a panic.
    let wrong = chat.get::<Vote>("once").await.unwrap_err();
    assert!(wrong.to_string().contains("once"), "{wrong}");
    chat.put(
        "vote#bob",
        &Vote {
            option: 1,
            label: "pizza".into(),
        },
        Some(std::time::Duration::from_secs(30)),
    )
    .await
    .unwrap();
    let listed: Vec<String> = chat
        .list::<Vote>("vote#")
        .await
        .unwrap()
        .into_iter()
        .map(|(k, v)| format!("{k}={}", v.option))
        .collect();
    assert_eq!(listed, ["vote#ann=2", "vote#bob=1"]);
    clock.advance(std::time::Duration::from_secs(31));
    assert_eq!(chat.get::<Vote>("vote#bob").await.unwrap(), None);
    assert_eq!(chat.list::<Vote>("vote#").await.unwrap().len(), 1);
    chat.delete("vote#ann").await.unwrap();
    assert!(chat.list::<Vote>("vote#").await.unwrap().is_empty());
}

async fn put_get_and_delete_round_trip(store: SharedStore, _clock: Arc<ManualClock>) {
    let key = Key::new("tailchat#app#x", "one");
    assert_eq!(store.get(&key).await.unwrap(), None);
    let value = r#"{"status":"IN_PROGRESS","note":"ünïcødé ✓"}"#;
    store.put(&key, value, None).await.unwrap();
    let item = store.get(&key).await.unwrap().expect("stored");
    assert_eq!(item.value, value);
    assert_eq!(item.expires_at, None);
    store
        .put(&key, "second", Some(4_000_000_000))
        .await
        .unwrap();
    let item = store.get(&key).await.unwrap().expect("overwritten");
    assert_eq!(
        (item.value.as_str(), item.expires_at),
        ("second", Some(4_000_000_000))
    );
    store.delete(&key).await.unwrap();
    assert_eq!(store.get(&key).await.unwrap(), None);
    store
        .delete(&key)
        .await
        .expect("deleting an absent item is fine");
}

async fn put_if_absent_has_exactly_one_winner_among_racing_tasks(
    store: SharedStore,
    clock: Arc<ManualClock>,
) {
    let key = Key::new("tailchat#app#evt#race", "idem");
    let expires = clock.now_s() + 60;
    let mut tasks = Vec::new();
    for i in 0..16 {
        let (store, key) = (store.clone(), key.clone());
        tasks.push(tokio::spawn(async move {
            store
                .put_if_absent(&key, &format!("task {i}"), Some(expires))
                .await
        }));
    }
    let mut winners = Vec::new();
    for (i, t) in tasks.into_iter().enumerate() {
        if t.await.unwrap().unwrap() {
            winners.push(i);
        }
    }
    assert_eq!(winners.len(), 1, "winners: {winners:?}");
    let stored = store.get(&key).await.unwrap().expect("the winner's item");
    assert_eq!(stored.value, format!("task {}", winners[0]));
    assert!(
        !store
            .put_if_absent(&key, "late", Some(expires))
            .await
            .unwrap()
    );
}

async fn expired_items_are_absent_everywhere_and_can_be_replaced(
    store: SharedStore,
    clock: Arc<ManualClock>,
) {
    let pk = "tailchat#app#ttl";
    let key = Key::new(pk, "a");
    store
        .put(&key, "short-lived", Some(clock.now_s() + 10))
        .await
        .unwrap();
    store
        .put(&Key::new(pk, "b"), "long-lived", Some(clock.now_s() + 1000))
        .await
        .unwrap();
    assert!(store.get(&key).await.unwrap().is_some());
    clock.advance(Duration::from_secs(10));
    assert_eq!(
        store.get(&key).await.unwrap(),
        None,
        "gone at its expiry second"
    );
    let listed: Vec<String> = store
        .query_prefix(pk, "")
        .await
        .unwrap()
        .into_iter()
        .map(|(sk, _)| sk)
        .collect();
    assert_eq!(listed, vec!["b"]);
    assert!(
        store
            .put_if_absent(&key, "reborn", Some(clock.now_s() + 10))
            .await
            .unwrap()
    );
    assert_eq!(
        store.get(&key).await.unwrap().expect("replaced").value,
        "reborn"
    );
}

async fn delete_if_removes_only_a_live_item_with_that_value(
    store: SharedStore,
    clock: Arc<ManualClock>,
) {
    let key = Key::new("dingtalk#robot#flush", "lock");
    store
        .put(&key, "owner-a", Some(clock.now_s() + 30))
        .await
        .unwrap();
    assert!(!store.delete_if(&key, "owner-b").await.unwrap(), "not ours");
    assert!(store.get(&key).await.unwrap().is_some());
    assert!(store.delete_if(&key, "owner-a").await.unwrap());
    assert!(store.get(&key).await.unwrap().is_none());
    assert!(!store.delete_if(&key, "owner-a").await.unwrap(), "gone");
    // An expired lock that someone else has since taken is theirs.
    store
        .put(&key, "owner-a", Some(clock.now_s() + 30))
        .await
        .unwrap();
    clock.advance(Duration::from_secs(31));
    assert!(!store.delete_if(&key, "owner-a").await.unwrap(), "expired");
}

async fn prefix_queries_stay_in_one_partition_in_sort_order(
    store: SharedStore,
    _clock: Arc<ManualClock>,
) {
    let pk = "tailchat#app#notes#c1";
    for sk in ["note#0003", "note#0001", "other#1", "note#0002"] {
        store.put(&Key::new(pk, sk), sk, None).await.unwrap();
    }
    store
        .put(&Key::new("tailchat#app#notes#c2", "note#0009"), "c2", None)
        .await
        .unwrap();
    store
        .put(&Key::new("tailchat#app#notes#c", "note#0008"), "c", None)
        .await
        .unwrap();
    let notes: Vec<String> = store
        .query_prefix(pk, "note#")
        .await
        .unwrap()
        .into_iter()
        .map(|(sk, _)| sk)
        .collect();
    assert_eq!(notes, vec!["note#0001", "note#0002", "note#0003"]);
    let all = store.query_prefix(pk, "").await.unwrap();
    assert_eq!(all.len(), 4);
    assert_eq!(all[3].1.value, "other#1");
    assert!(
        store
            .query_prefix("tailchat#app#notes#none", "note#")
            .await
            .unwrap()
            .is_empty()
    );
}

/// An unreachable DynamoDB is an error, promptly, not a hang or a panic.
#[tokio::test]
async fn an_unreachable_dynamodb_is_a_clear_error() {
    let endpoint = format!("http://127.0.0.1:{}", support::free_port());
    let config = dynamo_config(&endpoint)
        .retry_config(aws_sdk_dynamodb::config::retry::RetryConfig::disabled())
        .build();
    let clock: SharedClock = Arc::new(hookline::clock::SystemClock);
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::from_conf(config), "t", clock);
    let err = store.get(&Key::new("a", "b")).await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err}");
    assert!(
        err.to_string()
            .starts_with("state store unavailable: dynamodb"),
        "{err}"
    );
}
