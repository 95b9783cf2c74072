// Preloaded into the seed's Node app (`node -r route_to_fake.js lib/server.js`) by
// benchmarks/seed_side_by_side.py: its Nexmo SDK (nexmo 1.2.1) hard-codes the host
// api.nexmo.com and port 443 (HttpClient sets `this.port = 443 || options.port`), so no
// option can point it elsewhere. This sends its HTTPS requests for api.nexmo.com to the
// TLS fake at FAKE_VONAGE_HOST ("127.0.0.1:<port>") instead, unchanged otherwise; the
// fake's CA is trusted through NODE_EXTRA_CA_CERTS. The seed's own code is not touched.
'use strict';

const https = require('https');

const target = process.env.FAKE_VONAGE_HOST || '';
const separator = target.lastIndexOf(':');
if (separator < 1) {
  throw new Error('FAKE_VONAGE_HOST must be "host:port", not ' + JSON.stringify(target));
}
const fakeHost = target.slice(0, separator);
const fakePort = Number(target.slice(separator + 1));
const request = https.request;

https.request = function routedToFake(options, ...rest) {
  if (options && typeof options === 'object' && !(options instanceof URL)
      && (options.host === 'api.nexmo.com' || options.hostname === 'api.nexmo.com')) {
    options = Object.assign({}, options, { host: fakeHost, hostname: fakeHost, port: fakePort });
  }
  return request.call(this, options, ...rest);
};
