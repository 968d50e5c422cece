"""A Python bot behind hookline's forward bridge (schemas/forward.schema.json), standard library
only: HOOKLINE_FORWARD_SECRET=... python3 forward_endpoint.py [port, default 8090; 0: any free]"""
import hashlib, hmac, json, os, sys, time
from http.server import BaseHTTPRequestHandler, HTTPServer
SECRET = os.environ["HOOKLINE_FORWARD_SECRET"].encode()

def verified(header, body):
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    signed = hmac.new(SECRET, parts.get("t", "").encode() + b"." + body, hashlib.sha256)
    fresh = abs(time.time() - int(parts.get("t", "0"))) < 300
    return fresh and hmac.compare_digest(signed.hexdigest(), parts.get("v1", ""))

def answer(event):
    if event["event"]["type"] != "text":
        return []
    text, who = event["event"]["text"], event["sender"]["name"] or "there"
    return [{"type": "text", "text": f"Python heard {who}: {text}", "mention_sender": True}]
class Bot(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if not verified(self.headers.get("Hookline-Signature", ""), body):
            return self.send_error(401)
        reply = json.dumps({"replies": answer(json.loads(body))}).encode()
        self.send_response(200), self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply))), self.end_headers()
        self.wfile.write(reply)

server = HTTPServer(("127.0.0.1", int(sys.argv[1]) if len(sys.argv) > 1 else 8090), Bot)
print(f"listening on http://127.0.0.1:{server.server_port}/", flush=True)
server.serve_forever()
