#!/usr/bin/env node
'use strict';
/**
 * One call of every actsvc RPC from Node.js, printed.
 *
 *   node examples/node/example.js --target 127.0.0.1:50051
 *   node examples/node/example.js        # starts the build's actsvc-server
 *   node examples/node/example.js --server build/server/actsvc-server
 *
 * Needs `npm ci` in examples/node (scripts/install-deps.sh runs it).
 */
const { Client, LocalServer, status } = require('./actsvc_client');

function show(title, value) {
  console.log(`== ${title}`);
  console.log(value);
  console.log();
}

async function runExamples(client) {
  show('Health', await client.health());

  const x = Float64Array.from({ length: 7 }, (_, i) => i - 3);  // -3..3
  show('Evaluate gelu (float64)', await client.evaluate('gelu', x));
  const z = { data: new Float32Array([1, 2, 3, 1, 1, 1]), shape: [2, 3] };
  show('Evaluate softmax along axis 0 of a 2x3 float32 tensor',
       await client.evaluate('softmax', z, { axis: 0 }));

  // The tails keep their digits: sigma'(20) = 2.06e-9, not 0.
  show("Derivative sigmoid' at 0, 6, 20 (float32)",
       await client.derivative('sigmoid', new Float32Array([0, 6, 20])));
  show("Derivative tanh'' (order 2)",
       await client.derivative('tanh', x, { order: 2 }));
  const g = { data: new Float32Array([1, 0, 0, 0, 0, 1]), shape: [2, 3] };
  show('VJP of softmax: g^T J along the last axis', await client.vjp('softmax', z, g));

  show('Jacobian of softmax over one row of 3: [1, 3, 3]',
       await client.jacobian('softmax', { data: [0, 1, 2], shape: [1, 3] }));

  const xent = await client.softmaxCrossEntropy(z, { labels: [2, 0],
                                                    returnProbabilities: true });
  show('SoftmaxCrossEntropy, labels [2, 0], mean: loss, grad, probs', xent);

  const functions = await client.listFunctions();
  show('ListFunctions', Object.keys(functions).join(' '));
  show("gelu's derivative range", functions.gelu.derivative_range);

  const streamed = [];
  for await (const y of client.stream([['evaluate', 'silu', x],
                                       ['derivative', 'silu', x, { order: 2 }]])) {
    streamed.push(y);
  }
  show('Stream: silu and silu\'\' in one call', streamed);

  const grid = Float64Array.from({ length: 1601 }, (_, i) => -8 + i / 100);
  show('Analyze tanh over [-8, 8], epsilon 0.01, 10 layers',
       await client.analyze('tanh', grid, { epsilon: 0.01, layers: 10 }));

  try {
    await client.derivative('softmax', z);  // a VJP needs upstreamGrad
  } catch (error) {
    if (error.code !== status.INVALID_ARGUMENT) throw error;
    show('Error: the server\'s status code and message',
         `${error.codeName} (${error.code}): ${error.details}`);
  }
}

async function main(argv) {
  const flag = (name) => {
    const i = argv.indexOf(name);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  let target = flag('--target');
  let server = null;
  if (!target) {
    server = await new LocalServer(flag('--server')).start();
    target = server.target;
    console.log(`(started actsvc-server on ${target})\n`);
  }
  const client = new Client(target);
  try {
    await runExamples(client);
  } finally {
    client.close();
    if (server) await server.stop();
  }
}

main(process.argv.slice(2)).catch((error) => {
  console.error(error);
  process.exitCode = 1;
});
