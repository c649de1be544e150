// A webhook receiver for the end-to-end tests: verifies every delivery with the npm
// `standardwebhooks` package (the Standard Webhooks reference verifier, not our code)
// and reports it as one JSON line on stdout.
//
// Prints {"port": n} first. Commands arrive as JSON lines on stdin:
//   {"secret": "whsec_…"}   verify with this secret from now on
//   {"fail": n}             answer 500 to the next n deliveries (-1: until told otherwise)
// Each request is reported as {"verified": true, "id", "type", "seq", "data", "status",
// "signatures"} or {"verified": false, "error", "status"}; a delivery is acknowledged
// (200) only when it verified and no failure is due.

import http from 'node:http';
import readline from 'node:readline';
import { Webhook } from 'standardwebhooks';

let webhook = null;
let failing = 0;

const out = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');

readline.createInterface({ input: process.stdin }).on('line', (line) => {
  if (!line.trim()) return;
  const cmd = JSON.parse(line);
  if (cmd.secret !== undefined) webhook = new Webhook(cmd.secret);
  if (cmd.fail !== undefined) failing = cmd.fail;
  out({ ack: cmd });
});

const server = http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const body = Buffer.concat(chunks).toString('utf8');
    const headers = {
      'webhook-id': req.headers['webhook-id'] ?? '',
      'webhook-timestamp': req.headers['webhook-timestamp'] ?? '',
      'webhook-signature': req.headers['webhook-signature'] ?? '',
    };
    let report;
    let status;
    try {
      if (!webhook) throw new Error('no secret yet');
      const event = webhook.verify(body, headers);
      status = failing !== 0 ? 500 : 200;
      if (failing > 0) failing -= 1;
      report = {
        verified: true,
        webhookId: headers['webhook-id'],
        id: event.id,
        type: event.type,
        seq: event.seq,
        data: event.data,
        signatures: headers['webhook-signature'].split(' ').length,
        status,
      };
    } catch (e) {
      status = 500;
      report = { verified: false, error: String(e && e.message), status };
    }
    res.writeHead(status, { 'content-type': 'text/plain' });
    res.end(status === 200 ? 'ok' : 'not now');
    out(report);
  });
});

server.listen(0, '127.0.0.1', () => out({ port: server.address().port }));
