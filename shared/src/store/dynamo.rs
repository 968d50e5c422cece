//! The DynamoDB backend: one on-demand table, string keys `pk`/`sk`, value `v`, TTL `expires_at`.
//!
//! Every read is strongly consistent (dedup and budgets decide on them; the cost difference is
//! nothing at hobby scale). Expired items are filtered on read, and conditional writes treat them
//! as absent, because DynamoDB deletes TTL-expired items lazily.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
    ScalarAttributeType, TimeToLiveSpecification,
};

use super::{Item, Key, StateStore, StoreError, is_live};
use crate::clock::SharedClock;

/// The DynamoDB store.
#[derive(Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
    clock: SharedClock,
}

impl std::fmt::Debug for DynamoStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DynamoStore")
            .field("table", &self.table)
            .finish_non_exhaustive()
    }
}

fn unavailable<E, R>(err: SdkError<E, R>) -> StoreError
where
    E: std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    StoreError::Unavailable(format!("dynamodb: {}", DisplayErrorContext(err)))
}

fn is_condition_failure<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> bool {
    err.as_service_error()
        .and_then(|e| e.code())
        .is_some_and(|c| c == "ConditionalCheckFailedException")
}

/// Whether a conditional write happened: a failed condition is `false`, not an error.
fn conditional<T, E, R>(result: Result<T, SdkError<E, R>>) -> Result<bool, StoreError>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    match result {
        Ok(_) => Ok(true),
        Err(e) if is_condition_failure(&e) => Ok(false),
        Err(e) => Err(unavailable(e)),
    }
}

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_owned())
}

fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn read_item(key: &str, attrs: &HashMap<String, AttributeValue>) -> Result<Item, StoreError> {
    let corrupt = |reason: &str| StoreError::Corrupt {
        key: key.to_owned(),
        reason: reason.to_owned(),
    };
    let value = match attrs.get("v") {
        Some(AttributeValue::S(v)) => v.clone(),
        Some(AttributeValue::N(v)) => v.clone(),
        _ => return Err(corrupt("missing value attribute `v`")),
    };
    let expires_at = match attrs.get("expires_at") {
        None => None,
        Some(AttributeValue::N(e)) => Some(
            e.parse()
                .map_err(|_| corrupt("expires_at is not an integer"))?,
        ),
        Some(_) => return Err(corrupt("expires_at is not a number")),
    };
    Ok(Item { value, expires_at })
}

impl DynamoStore {
    /// A store over an existing client.
    pub fn new(client: Client, table: impl Into<String>, clock: SharedClock) -> Self {
        Self {
            client,
            table: table.into(),
            clock,
        }
    }

    /// A store whose client is configured from the standard AWS variables (region, credentials,
    /// `AWS_ENDPOINT_URL_DYNAMODB`).
    pub async fn from_env(table: &str, clock: SharedClock) -> Self {
        let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        Self::new(Client::new(&config), table, clock)
    }

    /// Creates the table (on-demand, TTL on `expires_at`) unless it exists. For local servers
    /// and tests; deployed stacks get the table from the SAM template.
    pub async fn create_table_if_missing(&self) -> Result<(), StoreError> {
        let exists = self
            .client
            .describe_table()
            .table_name(&self.table)
            .send()
            .await;
        if exists.is_ok() {
            return Ok(());
        }
        let attr = |name: &str| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .map_err(|e| StoreError::Unavailable(e.to_string()))
        };
        let key = |name: &str, kind| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(kind)
                .build()
                .map_err(|e| StoreError::Unavailable(e.to_string()))
        };
        let created = self
            .client
            .create_table()
            .table_name(&self.table)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(attr("pk")?)
            .attribute_definitions(attr("sk")?)
            .key_schema(key("pk", KeyType::Hash)?)
            .key_schema(key("sk", KeyType::Range)?)
            .send()
            .await;
        if let Err(err) = created
            && err.as_service_error().and_then(|e| e.code()) != Some("ResourceInUseException")
        {
            return Err(unavailable(err));
        }
        let ttl = TimeToLiveSpecification::builder()
            .attribute_name("expires_at")
            .enabled(true)
            .build()
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        self.client
            .update_time_to_live()
            .table_name(&self.table)
            .time_to_live_specification(ttl)
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    fn item_attrs(
        key: &Key,
        value: &str,
        expires_at: Option<i64>,
    ) -> HashMap<String, AttributeValue> {
        let mut item = HashMap::from([
            ("pk".to_owned(), s(&key.pk)),
            ("sk".to_owned(), s(&key.sk)),
            ("v".to_owned(), s(value)),
        ]);
        if let Some(e) = expires_at {
            item.insert("expires_at".to_owned(), n(e));
        }
        item
    }
}

#[async_trait]
impl StateStore for DynamoStore {
    async fn get(&self, key: &Key) -> Result<Option<Item>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(&key.pk))
            .key("sk", s(&key.sk))
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable)?;
        match out.item {
            None => Ok(None),
            Some(attrs) => {
                let item = read_item(&key.to_string(), &attrs)?;
                Ok(is_live(item.expires_at, self.clock.now_s()).then_some(item))
            }
        }
    }

    async fn put(&self, key: &Key, value: &str, expires_at: Option<i64>) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(Self::item_attrs(key, value, expires_at)))
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn compare_and_set(
        &self,
        key: &Key,
        expected: Option<&str>,
        value: &str,
        expires_at: Option<i64>,
    ) -> Result<bool, StoreError> {
        let request = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(Self::item_attrs(key, value, expires_at)))
            .expression_attribute_values(":now", n(self.clock.now_s()));
        // An expired item is absent for every operation, whatever the TTL sweeper has done.
        let request = match expected {
            None => request.condition_expression("attribute_not_exists(pk) OR expires_at <= :now"),
            Some(expected) => request
                .condition_expression(
                    "v = :v AND (attribute_not_exists(expires_at) OR expires_at > :now)",
                )
                .expression_attribute_values(":v", s(expected)),
        };
        conditional(request.send().await)
    }

    async fn delete(&self, key: &Key) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(&key.pk))
            .key("sk", s(&key.sk))
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn delete_if(&self, key: &Key, value: &str) -> Result<bool, StoreError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(&key.pk))
            .key("sk", s(&key.sk))
            .condition_expression(
                "v = :v AND (attribute_not_exists(expires_at) OR expires_at > :now)",
            )
            .expression_attribute_values(":v", s(value))
            .expression_attribute_values(":now", n(self.clock.now_s()))
            .send()
            .await;
        conditional(result)
    }

    async fn query_prefix(
        &self,
        pk: &str,
        sk_prefix: &str,
    ) -> Result<Vec<(String, Item)>, StoreError> {
        let now = self.clock.now_s();
        let mut query = self
            .client
            .query()
            .table_name(&self.table)
            .consistent_read(true)
            .expression_attribute_values(":pk", s(pk));
        // DynamoDB refuses an empty string in begins_with.
        query = if sk_prefix.is_empty() {
            query.key_condition_expression("pk = :pk")
        } else {
            query
                .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
                .expression_attribute_values(":prefix", s(sk_prefix))
        };
        let mut out = Vec::new();
        let mut pages = query.into_paginator().items().send();
        while let Some(attrs) = pages.next().await {
            let attrs = attrs.map_err(unavailable)?;
            let Some(AttributeValue::S(sk)) = attrs.get("sk") else {
                return Err(StoreError::Corrupt {
                    key: pk.to_owned(),
                    reason: "item without sk".into(),
                });
            };
            let item = read_item(&format!("{pk}/{sk}"), &attrs)?;
            if is_live(item.expires_at, now) {
                out.push((sk.clone(), item));
            }
        }
        Ok(out)
    }
}
