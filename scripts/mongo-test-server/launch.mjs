// Runs the MongoDB-wire test server of npm @push.rocks/smartmongo with
// in-memory storage on 127.0.0.1:PORT, for the test suite only.
//
// Two changes to its hello reply, made by wrapping the handler:
//  - topologyVersion is removed. The server sends a new one in every reply
//    but ignores maxAwaitTimeMS, so a driver that streams server monitoring
//    asks again at once, thousands of times a second; without the field
//    drivers poll once per heartbeat, as with an old mongod.
//  - with AP_MONGO_TEST_SET_NAME set, the reply names a one-member replica
//    set whose primary is this server, so that a mongodb://...?replicaSet=
//    URI, retryable writes and transactions take the driver's replica-set
//    code paths, as they do against a production deployment.
//
// Usage: node launch.mjs PORT NODE_MODULES_DIR
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const [port, modules] = process.argv.slice(2);
if (!/^[0-9]+$/.test(port ?? '') || !modules) {
  console.error('usage: node launch.mjs PORT NODE_MODULES_DIR');
  process.exit(2);
}

const packageRoot = path.join(modules, '@push.rocks', 'smartmongo', 'dist_ts',
                              'congodb');
const load = (relative) =>
  import(pathToFileURL(path.join(packageRoot, relative)).href);
const { CongoServer } = await load('index.js');
const { HelloHandler } = await load('server/handlers/HelloHandler.js');

const setName = process.env.AP_MONGO_TEST_SET_NAME ?? '';
const address = `127.0.0.1:${port}`;
const originalHandle = HelloHandler.prototype.handle;
HelloHandler.prototype.handle = async function (context) {
  const reply = await originalHandle.call(this, context);
  delete reply.topologyVersion;
  if (setName !== '') {
    reply.setName = setName;
    reply.setVersion = 1;
    reply.hosts = [address];
    reply.primary = address;
    reply.me = address;
    reply.secondary = false;
  }
  return reply;
};

const server = new CongoServer({
  port: Number(port),
  host: '127.0.0.1',
  storage: 'memory',
});
await server.start();
console.log(`mongo-wire test server on ${address}` +
            (setName ? ` (replica set ${setName})` : ''));

const stop = async () => {
  await server.stop();
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
