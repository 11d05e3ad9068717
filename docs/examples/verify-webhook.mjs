// Verify a ReplyDesk webhook in your receiver: Node 18+, standard library only.
//
//   X-ReplyDesk-Event-Id:  42
//   X-ReplyDesk-Signature: t=1764680000,v2=<hex HMAC-SHA256(secret, "v2:{t}:{event id}:{raw body}")>
//
// Run as a receiver: REPLYDESK_WEBHOOK_SECRET=... PORT=8787 node verify-webhook.mjs
// (tests/test_security_webhook_signing.py runs it against deliveries made by the service's dispatcher).
import { createHmac, timingSafeEqual } from "node:crypto";

// headers: Node's lower-cased request headers; rawBody: the Buffer as received (not re-serialised JSON).
// Returns the event id of a genuine delivery whose t is within toleranceS seconds of now (either way);
// throws otherwise (answer 401).
export function verifyReplyDeskWebhook(secret, headers, rawBody, nowS = Date.now() / 1000, toleranceS = 300) {
  const eventId = String(headers["x-replydesk-event-id"] ?? "");
  const stamps = [];
  const macs = [];
  for (const part of String(headers["x-replydesk-signature"] ?? "").split(",")) {
    const [key, value = ""] = part.trim().split(/=(.*)/s);
    if (key === "t") stamps.push(value);
    if (key === "v2") macs.push(value);
  }
  const malformed = stamps.length !== 1 || !/^\d+$/.test(stamps[0]) || macs.length === 0;
  if (malformed || !eventId || eventId.includes(":")) {
    throw new Error("missing or malformed X-ReplyDesk-Signature / X-ReplyDesk-Event-Id");
  }
  const timestamp = Number(stamps[0]);
  if (Math.abs(nowS - timestamp) > toleranceS) {
    throw new Error("signature timestamp is outside the tolerance (replayed or clock skew)");
  }
  const signed = Buffer.concat([Buffer.from(`v2:${timestamp}:${eventId}:`), rawBody]);
  const expected = createHmac("sha256", secret).update(signed).digest();
  const matches = macs.some((mac) => {
    const given = Buffer.from(mac, "hex");
    return given.length === expected.length && timingSafeEqual(given, expected);
  });
  if (!matches) throw new Error("signature does not match");
  return eventId;
}

// The receiver (run this file): a replay guard and an HTTP server. Not needed to verify.
import { createServer } from "node:http";
import { pathToFileURL } from "node:url";

// Replay guard: verified event ids, kept longer than the tolerance plus the retry span (a day, in memory;
// use a shared store with a TTL when several processes receive).
const KEEP_MS = 24 * 3600 * 1000;
const seen = new Map(); // event id -> first seen (ms), in arrival order

function firstTime(eventId, nowMs = Date.now()) {
  for (const [id, at] of seen) {
    if (nowMs - at < KEEP_MS) break;
    seen.delete(id);
  }
  if (seen.has(eventId)) return false;
  seen.set(eventId, nowMs);
  return true;
}

function answer(res, status, payload) {
  res.writeHead(status, { "Content-Type": "application/json" });
  res.end(JSON.stringify(payload));
}

function serve(secret, port) {
  const server = createServer((req, res) => {
    const chunks = [];
    req.on("data", (chunk) => chunks.push(chunk));
    req.on("end", () => {
      const rawBody = Buffer.concat(chunks);
      let eventId;
      try {
        eventId = verifyReplyDeskWebhook(secret, req.headers, rawBody);
      } catch (err) {
        return answer(res, 401, { error: err.message });
      }
      if (!firstTime(eventId)) return answer(res, 200, { duplicate: true, event_id: eventId });
      const event = JSON.parse(rawBody);
      // ...handle event.type / event.data here...
      return answer(res, 200, { ok: true, event_id: eventId, type: event.type });
    });
  });
  server.listen(port, "127.0.0.1", () => console.log(`listening on ${server.address().port}`));
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const secret = process.env.REPLYDESK_WEBHOOK_SECRET;
  if (!secret) {
    console.error("set REPLYDESK_WEBHOOK_SECRET");
    process.exit(2);
  }
  serve(secret, Number(process.env.PORT ?? 8787));
}
