// Drives @kubernetes/client-node, unmodified, against one API server (argv[2]) and prints
// one JSON line per step, for tests/e2e/test_client_libraries.py to check.
import * as k8s from '@kubernetes/client-node';

const server = process.argv[2];
const kc = new k8s.KubeConfig();
kc.loadFromOptions({
  clusters: [{ name: 'x', server, skipTLSVerify: true }],
  users: [{ name: 'x' }],
  contexts: [{ name: 'x', cluster: 'x', user: 'x' }],
  currentContext: 'x',
});
const say = (step, value) => console.log(JSON.stringify({ step, value }));
const apps = kc.makeApiClient(k8s.AppsV1Api);
const core = kc.makeApiClient(k8s.CoreV1Api);
const namespace = 'default';

say('version', (await kc.makeApiClient(k8s.VersionApi).getCode()).gitVersion);
await apps.createNamespacedDeployment({ namespace, body: {
  apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'node-web' },
  spec: { replicas: 1, selector: { matchLabels: { app: 'node-web' } },
          template: { metadata: { labels: { app: 'node-web' } },
                      spec: { containers: [{ name: 'web', image: 'nginx' }] } } } } });
const scale = await apps.readNamespacedDeploymentScale({ name: 'node-web', namespace });
say('scale', { replicas: scale.spec.replicas, selector: scale.status.selector });
scale.spec.replicas = 3;
await apps.replaceNamespacedDeploymentScale({ name: 'node-web', namespace, body: scale });
say('replicas', (await apps.readNamespacedDeployment({ name: 'node-web', namespace })).spec.replicas);
await core.createNamespacedService({ namespace, body: {
  apiVersion: 'v1', kind: 'Service', metadata: { name: 'node-svc' },
  spec: { ports: [{ port: 80 }], selector: { app: 'node-web' } } } });
say('services', (await core.listNamespacedService({ namespace })).items.map((s) => s.metadata.name));
const missing = await core.readNamespacedService({ name: 'nope', namespace }).then(
  () => null, (err) => ({ code: err.code, reason: JSON.parse(err.body).reason }));
say('missing', missing);

// A watch through the client's Watch helper sees the next change as it happens.
const seen = new Promise((resolve, reject) => {
  const watch = new k8s.Watch(kc);
  watch.watch(`/api/v1/namespaces/${namespace}/services`, { resourceVersion: '0' },
    (type, obj) => { if (obj.metadata.name === 'node-svc' && type === 'DELETED') resolve(type); },
    (err) => { if (err) reject(err); }).then((req) => setTimeout(() => { req.abort(); reject(new Error('no DELETED event in 10 s')); }, 10000));
});
await core.deleteNamespacedService({ name: 'node-svc', namespace });
say('watched', await seen);
process.exit(0);
