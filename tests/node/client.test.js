'use strict';
// examples/node/actsvc_client.js against a real actsvc-server that this file
// starts on a free loopback port: every RPC, values checked against known
// results and float64 references, errors by status code and message, and
// example.js end to end.
//
// Run by ctest (tests/node/CMakeLists.txt); by hand, after `npm ci` in
// examples/node:
//   ACTSVC_SERVER=build/server/actsvc-server node --test tests/node/

const assert = require('node:assert/strict');
const childProcess = require('node:child_process');
const path = require('node:path');
const { after, before, describe, it } = require('node:test');

const EXAMPLES = path.resolve(__dirname, '..', '..', 'examples', 'node');
const actsvc = require(path.join(EXAMPLES, 'actsvc_client.js'));
const ref = require('./reference.js');

const ELEMENTWISE = ['identity', 'sigmoid', 'tanh', 'relu', 'leaky_relu',
                     'gelu_tanh', 'silu', 'softplus', 'elu', 'selu'];

let server;
let client;

before(async () => {
  server = await new actsvc.LocalServer(undefined, ['--shutdown_grace_s=5']).start();
  client = new actsvc.Client(server.target);
});

after(async () => {
  if (client) client.close();
  if (server) {
    const code = await server.stop();
    assert.equal(code, 0, `actsvc-server exited with ${code}\n${server.log}`);
  }
});

/** Every element of got within rtol * |want| + atol of want. */
function assertClose(got, want, { rtol = 0, atol = 0, what = '' } = {}) {
  assert.equal(got.length, want.length, `${what}: length`);
  for (let i = 0; i < want.length; ++i) {
    const err = Math.abs(got[i] - want[i]);
    assert.ok(err <= rtol * Math.abs(want[i]) + atol,
              `${what}[${i}]: got ${got[i]}, want ${want[i]} (error ${err})`);
  }
}

function linspace(lo, hi, n) {
  return Float64Array.from({ length: n }, (_, i) => lo + (hi - lo) * i / (n - 1));
}

/** Rejects with the server's status: code, its name, and a message matching. */
async function assertStatus(promise, codeName, pattern) {
  await assert.rejects(promise, (error) => {
    assert.equal(error.code, actsvc.status[codeName], `${error.message}`);
    assert.equal(error.codeName, codeName);
    assert.match(error.details, pattern);
    return true;
  });
}

describe('tensors', () => {
  it('keep their array type and shape, any rank', async () => {
    for (const Type of [Float32Array, Float64Array]) {
      for (const shape of [[], [0], [5], [2, 3, 4]]) {
        const n = shape.reduce((a, b) => a * b, 1);
        const data = Type.from({ length: n }, (_, i) => (i - 7) / 3);
        const y = await client.evaluate('identity', { data, shape });
        assert.ok(y.data instanceof Type, `${Type.name} ${shape}`);
        assert.deepEqual(y.shape, shape);
        assert.deepEqual(Array.from(y.data), Array.from(data));
      }
    }
  });

  it('plain arrays go as float64; a bad shape is refused locally', async () => {
    const y = await client.evaluate('relu', [1.5, -2]);
    assert.ok(y.data instanceof Float64Array);
    assert.deepEqual(Array.from(y.data), [1.5, 0]);
    assert.throws(() => actsvc.asTensor({ data: [1, 2, 3], shape: [2, 2] }),
                  /shape \[2,2\] holds 4 values, the data has 3/);
    assert.throws(() => actsvc.asTensor(new Int32Array(2)), TypeError);
  });

  it('typed encoding (float_data) gives the same values', async () => {
    const typed = new actsvc.Client(server.target, { typed: true });
    try {
      const x = new Float32Array([-1, 0.5, 2, 3]);
      const raw = await client.evaluate('tanh', x);
      const viaTyped = await typed.evaluate('tanh', x);
      assert.ok(viaTyped.data instanceof Float32Array);
      assert.deepEqual(Array.from(viaTyped.data), Array.from(raw.data));
      assertClose(raw.data, Array.from(x, Math.tanh), { rtol: 4 * 2 ** -23 });
    } finally {
      typed.close();
    }
  });
});

describe('Evaluate and Derivative', () => {
  const x = linspace(-12, 12, 97);  // step 0.25, includes 0

  it('f, f\' and f\'\' of every elementwise function match the references',
     async () => {
       for (const name of ELEMENTWISE) {
         for (const order of [0, 1, 2]) {
           const got = order === 0
             ? await client.evaluate(name, x)
             : await client.derivative(name, x, { order });
           const want = Array.from(x, (v) => ref.elementwise(name, v, order));
           assertClose(got.data, want, { rtol: 1e-12, atol: 1e-15,
                                         what: `${name} order ${order}` });
         }
       }
     });

  it('gelu, f\' and f\'\' against tabulated values, tail included', async () => {
    const x = Float64Array.from(ref.GELU_TABLE, (row) => row[0]);
    for (const order of [0, 1, 2]) {
      const got = order === 0 ? await client.evaluate('gelu', x)
                              : await client.derivative('gelu', x, { order });
      assertClose(got.data, ref.GELU_TABLE.map((row) => row[1 + order]),
                  { rtol: 1e-14, what: `gelu order ${order}` });
    }
    // The minimum of gelu' at -sqrt(2) (SPEC §1: the seed's "always
    // positive" is wrong).
    const min = await client.derivative('gelu', [-Math.SQRT2]);
    assertClose(min.data, [-0.12890414518515479], { rtol: 1e-14 });
  });

  it('float32 tails keep their digits: sigma\'(20) = 2.0611536e-9', async () => {
    const x = new Float32Array([0, 6, 20, -20]);
    const d = await client.derivative('sigmoid', x);
    assert.ok(d.data instanceof Float32Array);
    const want = [0.25, 0.0024665092913599, 2.0611536139418493e-9,
                  2.0611536139418493e-9];
    want.forEach((w, i) => {
      const ulps = ref.ulps32(d.data[i], Math.fround(w));
      assert.ok(ulps <= 4, `sigmoid'(${x[i]}) = ${d.data[i]}, want ${w} (${ulps} ulp)`);
    });
    const t = await client.derivative('tanh', new Float32Array([10]));
    assert.ok(ref.ulps32(t.data[0], Math.fround(8.2446144557673974e-9)) <= 4,
              `tanh'(10) = ${t.data[0]}`);
    const g = await client.evaluate('gelu', new Float32Array([-8]));
    assert.ok(ref.ulps32(g.data[0], Math.fround(-4.9767684594174273e-15)) <= 4,
              `gelu(-8) = ${g.data[0]}`);
  });

  it('alpha, and an alias resolved through ListFunctions', async () => {
    const x = linspace(-3, 3, 13);
    const got = await client.derivative('elu', x, { alpha: 0.3 });
    assertClose(got.data, Array.from(x, (v) => ref.elementwise('elu', v, 1, 0.3)),
                { rtol: 1e-15 });
    const leaky = await client.evaluate('leaky_relu', [-2, 3], { alpha: 0.2 });
    assert.deepEqual(Array.from(leaky.data), [-0.4, 3]);
    const swish = await client.evaluate('swish', x);
    const silu = await client.evaluate('silu', x);
    assert.deepEqual(Array.from(swish.data), Array.from(silu.data));
  });

  it('softmax along either axis', async () => {
    const z = { data: [1, 2, 3, 1, 1, 1], shape: [2, 3] };
    const last = await client.evaluate('softmax', z);
    assertClose(last.data, ref.softmaxRows(z.data, 3), { rtol: 1e-15 });
    const first = await client.evaluate('softmax', z, { axis: 0 });
    // Along axis 0, column j is softmax([z0j, z1j]) = (sigma(d), sigma(-d)).
    const d = [0, 1, 2].map((j) => z.data[j] - z.data[3 + j]);
    assertClose(first.data, [...d.map(ref.sigmoid), ...d.map((v) => ref.sigmoid(-v))],
                { rtol: 1e-15 });
    const log = await client.evaluate('log_softmax', z);
    assertClose(log.data, ref.softmaxRows(z.data, 3).map(Math.log), { rtol: 1e-15 });
  });
});

describe('VJP and Jacobian', () => {
  const z = { data: [0.3, -1.2, 2.0, 0.5, 0.1, 0.7, -0.4, 1.1], shape: [2, 4] };
  const g = { data: [1, -2, 0.5, 0.25, -1, 3, 0, 2], shape: [2, 4] };

  it('gelu_tanh VJP is g * f\'(x)', async () => {
    const got = await client.vjp('gelu_tanh', z, g);
    assert.deepEqual(got.shape, [2, 4]);
    assertClose(got.data, z.data.map((v, i) => g.data[i] * ref.elementwise('gelu_tanh', v, 1)),
                { rtol: 1e-13 });
  });

  it('softmax VJP is p * (g - <g, p>), log_softmax g - p * sum(g)', async () => {
    const p = ref.softmaxRows(z.data, 4);
    const want = [];
    const wantLog = [];
    for (let r = 0; r < 2; ++r) {
      const row = [0, 1, 2, 3].map((j) => r * 4 + j);
      const dot = row.reduce((s, i) => s + g.data[i] * p[i], 0);
      const sum = row.reduce((s, i) => s + g.data[i], 0);
      row.forEach((i) => {
        want.push(p[i] * (g.data[i] - dot));
        wantLog.push(g.data[i] - p[i] * sum);
      });
    }
    assertClose((await client.vjp('softmax', z, g)).data, want, { rtol: 1e-12, atol: 1e-16 });
    assertClose((await client.vjp('log_softmax', z, g)).data, wantLog,
                { rtol: 1e-12, atol: 1e-15 });
    // float32 z with a float64 g: g is sent as float32.
    const f32 = await client.vjp('softmax', { data: Float32Array.from(z.data), shape: [2, 4] }, g);
    assert.ok(f32.data instanceof Float32Array);
    assertClose(f32.data, want, { rtol: 1e-5, atol: 1e-7 });
  });

  it('softmax Jacobian is diag(p) - p p^T per row; elementwise diagonal or dense',
     async () => {
       const jac = await client.jacobian('softmax', z);
       assert.deepEqual(jac.shape, [2, 4, 4]);
       assert.equal(jac.diagonal, false);
       const p = ref.softmaxRows(z.data, 4);
       const want = [];
       for (let r = 0; r < 2; ++r) {
         for (let i = 0; i < 4; ++i) {
           for (let j = 0; j < 4; ++j) {
             want.push((i === j ? p[r * 4 + i] : 0) - p[r * 4 + i] * p[r * 4 + j]);
           }
         }
       }
       assertClose(jac.data, want, { rtol: 1e-12, atol: 1e-17 });

       const diag = await client.jacobian('tanh', z);
       assert.equal(diag.diagonal, true);
       assert.deepEqual(diag.shape, [2, 4]);
       assertClose(diag.data, z.data.map((v) => ref.elementwise('tanh', v, 1)),
                   { rtol: 1e-14 });
       const dense = await client.jacobian('relu', z, { dense: true });
       assert.equal(dense.diagonal, false);
       assert.deepEqual(dense.shape, [2, 4, 4]);
       dense.data.forEach((v, k) => {
         const [r, i, j] = [Math.floor(k / 16), Math.floor(k / 4) % 4, k % 4];
         assert.equal(v, i === j && z.data[r * 4 + i] > 0 ? 1 : 0, `dense[${r},${i},${j}]`);
       });
     });
});

describe('SoftmaxCrossEntropy', () => {
  const z = { data: [1, 2, 3, 1, 1, 1], shape: [2, 3] };
  const p = ref.softmaxRows(z.data, 3);
  const lse = ref.logsumexpRows(z.data, 3);

  it('class indices, mean: loss, p - y over the rows, probabilities', async () => {
    const r = await client.softmaxCrossEntropy(z, { labels: [2, 0],
                                                    returnProbabilities: true });
    assert.deepEqual(r.loss.shape, []);
    assertClose(r.loss.data, [((lse[0] - 3) + (lse[1] - 1)) / 2], { rtol: 1e-15 });
    const onehot = [0, 0, 1, 1, 0, 0];
    assertClose(r.grad.data, p.map((v, i) => (v - onehot[i]) / 2), { rtol: 1e-14 });
    assertClose(r.probs.data, p, { rtol: 1e-15 });
  });

  it('reduction none, ignore_index, probability targets', async () => {
    const none = await client.softmaxCrossEntropy(z, { labels: [2, 0], reduction: 'none' });
    assert.deepEqual(none.loss.shape, [2]);
    assertClose(none.loss.data, [lse[0] - 3, lse[1] - 1], { rtol: 1e-15 });
    assert.equal(none.probs, null);

    const ignored = await client.softmaxCrossEntropy(z, { labels: [2, 0], ignoreIndex: 0 });
    assertClose(ignored.loss.data, [lse[0] - 3], { rtol: 1e-15 });  // one row counted
    assert.deepEqual(Array.from(ignored.grad.data.slice(3)), [0, 0, 0]);

    const y = [0.5, 0.5, 0, 0, 0, 1];
    const soft = await client.softmaxCrossEntropy(z, { targetProbs: { data: y, shape: [2, 3] },
                                                       reduction: 'sum' });
    const want = (lse[0] - (0.5 * 1 + 0.5 * 2)) + (lse[1] - 1);
    assertClose(soft.loss.data, [want], { rtol: 1e-15 });
    assertClose(soft.grad.data, p.map((v, i) => v - y[i]), { rtol: 1e-14, atol: 1e-16 });
  });
});

describe('ListFunctions, Stream, Analyze, health', () => {
  it('lists the 13 functions with their parameters and the correct ranges', async () => {
    const fns = await client.listFunctions();
    assert.deepEqual(Object.keys(fns), [
      'identity', 'sigmoid', 'tanh', 'relu', 'leaky_relu', 'gelu', 'gelu_tanh',
      'silu', 'softplus', 'elu', 'selu', 'softmax', 'log_softmax']);
    assert.ok(fns.silu.aliases.includes('swish'));
    assert.equal(fns.leaky_relu.function, 'LEAKY_RELU');
    assert.equal(fns.leaky_relu.parameters[0].name, 'alpha');
    assert.equal(fns.leaky_relu.parameters[0].default_value, 0.01);
    assert.equal(fns.softmax.elementwise, false);
    assert.equal(fns.sigmoid.saturates, true);
    assert.match(fns.gelu.derivative_range, /-0\.12890, 1\.12890/);
  });

  it('Stream answers in order; a bad request ends it with its status', async () => {
    const x = new Float32Array([-1, 0, 2]);
    const got = [];
    for await (const y of client.stream([
      ['evaluate', 'relu', x],
      ['derivative', 'sigmoid', x],
      ['derivative', 'tanh', [0.5], { order: 2 }],
      ['derivative', 'softmax', x, { upstreamGrad: [1, 0, 0] }],
    ])) {
      got.push(y);
    }
    assert.equal(got.length, 4);
    assert.deepEqual(Array.from(got[0].data), [0, 0, 2]);
    assertClose(got[1].data, Array.from(x, ref.sigmoid1), { rtol: 4 * 2 ** -23 });
    assertClose(got[2].data, [ref.elementwise('tanh', 0.5, 2)], { rtol: 1e-15 });
    const p = ref.softmaxRows(Array.from(x), 3);
    assertClose(got[3].data, p.map((v, i) => v * ((i === 0 ? 1 : 0) - p[0])),
                { rtol: 1e-5, atol: 1e-8 });

    const seen = [];
    await assertStatus((async () => {
      for await (const y of client.stream([['evaluate', 'silu', [1]],
                                           ['derivative', 'tanh', [1], { order: 3 }],
                                           ['evaluate', 'silu', [2]]])) {
        seen.push(y.data[0]);
      }
    })(), 'INVALID_ARGUMENT', /order/);
    assertClose(seen, [ref.elementwise('silu', 1, 0)], { rtol: 1e-15 });
  });

  it('Analyze of relu over [-2, 2] gives the exact counts', async () => {
    const r = await client.analyze('relu', [-2, -1, 0, 1, 2, NaN], { layers: 2 });
    assert.equal(r.units, 5);
    assert.equal(r.nan_count, 1);
    assert.equal(r.zero_outputs, 3);
    assert.equal(r.dead_units, 3);  // relu'(0) = 0
    assert.equal(r.saturated_units, 3);
    assert.equal(r.epsilon, 1e-3);
    assert.equal(r.sparsity, 0.6);
    assert.equal(r.mean_abs_derivative, 0.4);
    assert.equal(r.max_abs_derivative, 1);
    assertClose([r.attenuation], [0.16], { rtol: 1e-15 });
    const noLayers = await client.analyze('relu', [1]);
    assert.equal('attenuation' in noLayers, false);
    // tanh' < 0.01 exactly where |x| > 2.99 (sech^2 3 = 0.00987).
    const t = await client.analyze('tanh', [-4, -3, 0, 1, 3.5], { epsilon: 0.01 });
    assert.equal(t.saturated_units, 3);
  });

  it('health says SERVING; an unknown service is NOT_FOUND', async () => {
    assert.equal(await client.health(), 'SERVING');
    await assertStatus(client.health('no.such.Service'), 'NOT_FOUND', /.*/);
  });
});

describe('errors carry the server\'s status code and message', () => {
  it('INVALID_ARGUMENT naming the field', async () => {
    const z = { data: [1, 2, 3, 4], shape: [2, 2] };
    await assertStatus(client.evaluate('softmax', z, { axis: 5 }), 'INVALID_ARGUMENT',
                       /axis = 5 is out of range/);
    await assertStatus(client.derivative('softmax', z), 'INVALID_ARGUMENT',
                       /upstream_grad is missing.*Jacobian/);
    await assertStatus(client.derivative('tanh', z, { order: 3 }), 'INVALID_ARGUMENT',
                       /order/);
    await assertStatus(client.evaluate('elu', z, { alpha: Infinity }), 'INVALID_ARGUMENT',
                       /alpha/);
    await assertStatus(client.softmaxCrossEntropy(z, { labels: [0, 7] }), 'INVALID_ARGUMENT',
                       /7/);
    await assertStatus(client.analyze('softmax', z), 'INVALID_ARGUMENT', /softmax|SOFTMAX/);
    await assert.rejects(client.evaluate('no_such_function', z), /unknown function/);
  });

  it('RESOURCE_EXHAUSTED over the server\'s element limit', async () => {
    const small = await new actsvc.LocalServer(undefined, ['--max_elements=100']).start();
    const c = new actsvc.Client(small.target);
    try {
      await assertStatus(c.evaluate('relu', new Float32Array(101)), 'RESOURCE_EXHAUSTED',
                         /100/);
      const ok = await c.evaluate('relu', new Float32Array([-1, 1]));
      assert.deepEqual(Array.from(ok.data), [0, 1]);
    } finally {
      c.close();
      assert.equal(await small.stop(), 0);
    }
  });
});

describe('example.js', () => {
  it('calls every RPC against the server and prints the answers', async () => {
    const out = await new Promise((resolve, reject) => {
      childProcess.execFile(process.execPath,
                            [path.join(EXAMPLES, 'example.js'), '--target', server.target],
                            { timeout: 60000 }, (error, stdout, stderr) => {
                              if (error) reject(new Error(`${error}\n${stderr}`));
                              else resolve(stdout);
                            });
    });
    for (const title of ['Health', 'Evaluate gelu', 'Derivative sigmoid', 'VJP of softmax',
                         'Jacobian of softmax', 'SoftmaxCrossEntropy', 'ListFunctions',
                         'Stream', 'Analyze tanh', 'Error']) {
      assert.match(out, new RegExp(`== ${title}`));
    }
    assert.match(out, /SERVING/);
    assert.match(out, /2\.0611536\d*e-9/);  // sigma'(20) in float32
    assert.match(out, /INVALID_ARGUMENT \(3\): upstream_grad is missing/);
  });
});
