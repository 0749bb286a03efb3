'use strict';
/**
 * A small Node.js client of the actsvc activation service.
 *
 *   const { Client } = require('./actsvc_client');
 *   const client = new Client('127.0.0.1:50051');
 *   const y = await client.evaluate('gelu', new Float64Array([-1, 0, 1]));
 *   // y = { data: Float64Array [-0.1587, 0, 0.8413], shape: [3] }
 *   const g = await client.derivative('sigmoid', new Float32Array([0, 6, 20]));
 *   client.close();
 *
 * proto/actsvc/v1/activation.proto is loaded at run time with
 * @grpc/proto-loader: no generated code. A tensor argument is a Float32Array
 * or Float64Array (shape [length]), a plain array of numbers (sent as
 * float64), or { data, shape } with either; results are { data, shape } with
 * the input's array type. Tensors travel as raw little-endian bytes (the
 * service's fast path), or as float_data / double_data with { typed: true }.
 * A failed call rejects with @grpc/grpc-js's ServiceError: `code` is the
 * server's status code (compare with `status.INVALID_ARGUMENT`), `details`
 * its message, and `codeName` the code's name.
 */

const childProcess = require('node:child_process');
const events = require('node:events');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');

const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const REPO = path.resolve(__dirname, '..', '..');
const LITTLE_ENDIAN = os.endianness() === 'LE';
const CODE_NAMES = Object.fromEntries(
  Object.entries(grpc.status).map(([name, code]) => [code, name]));

let loaded = null;  // { pb, health }, once loadProto() has run

/**
 * Loads activation.proto and grpc/health/v1/health.proto from protoDir
 * (default: $ACTSVC_PROTO, else proto/ of this checkout).
 */
function loadProto(protoDir) {
  if (loaded) return loaded;
  const dir = protoDir || process.env.ACTSVC_PROTO || path.join(REPO, 'proto');
  const definition = protoLoader.loadSync(
    ['actsvc/v1/activation.proto', 'grpc/health/v1/health.proto'], {
      includeDirs: [dir],
      keepCase: true,   // field names as in the .proto: raw_data, class_indices
      longs: Number,    // int64 shapes and counts as numbers
      enums: String,    // 'FLOAT32', 'GELU', 'SERVING'
      defaults: true,
      oneofs: true,     // StreamResponse.response names the field set
    });
  const packages = grpc.loadPackageDefinition(definition);
  loaded = { pb: packages.actsvc.v1, health: packages.grpc.health.v1 };
  return loaded;
}

// ---------------------------------------------------------------------------
// Tensors.

/** x as { data: Float32Array | Float64Array, shape: number[] }. */
function asTensor(x, name = 'tensor') {
  let data = x;
  let shape;
  if (x !== null && typeof x === 'object' && !ArrayBuffer.isView(x) &&
      !Array.isArray(x)) {
    ({ data, shape } = x);
  }
  if (Array.isArray(data)) {
    data = Float64Array.from(data);
  } else if (!(data instanceof Float32Array || data instanceof Float64Array)) {
    throw new TypeError(`${name}: a Float32Array, Float64Array, number[] or ` +
                        '{ data, shape } of one (actsvc computes float32 and ' +
                        'float64)');
  }
  shape = shape === undefined ? [data.length] : Array.from(shape, Number);
  const size = shape.reduce((a, b) => a * b, 1);
  if (size !== data.length) {
    throw new RangeError(`${name}: shape [${shape}] holds ${size} values, ` +
                         `the data has ${data.length}`);
  }
  return { data, shape };
}

/** The array as a Tensor message, raw little-endian bytes or typed values. */
function toMessage(tensor, typed) {
  const { data, shape } = tensor;
  const f32 = data instanceof Float32Array;
  const message = { shape, dtype: f32 ? 'FLOAT32' : 'FLOAT64' };
  if (typed) {
    message[f32 ? 'float_data' : 'double_data'] = Array.from(data);
  } else if (LITTLE_ENDIAN) {
    message.raw_data = Buffer.from(data.buffer, data.byteOffset,
                                   data.byteLength);
  } else {
    const bytes = Buffer.alloc(data.byteLength);
    data.forEach((v, i) => (f32 ? bytes.writeFloatLE(v, 4 * i)
                                : bytes.writeDoubleLE(v, 8 * i)));
    message.raw_data = bytes;
  }
  return message;
}

/** A Tensor message as { data, shape }; the data is a fresh typed array. */
function fromMessage(message) {
  const Type = { FLOAT32: Float32Array, FLOAT64: Float64Array }[message.dtype];
  if (!Type) throw new Error(`unsupported dtype ${message.dtype} in the response`);
  const shape = message.shape.map(Number);
  const typedValues =
      message.dtype === 'FLOAT32' ? message.float_data : message.double_data;
  let data;
  if (typedValues && typedValues.length > 0) {
    data = Type.from(typedValues);
  } else {
    const raw = message.raw_data || Buffer.alloc(0);
    data = new Type(raw.length / Type.BYTES_PER_ELEMENT);
    if (LITTLE_ENDIAN) {
      new Uint8Array(data.buffer).set(raw);  // copies: raw may be unaligned
    } else {
      const step = Type.BYTES_PER_ELEMENT;
      for (let i = 0; i < data.length; ++i) {
        data[i] = step === 4 ? raw.readFloatLE(4 * i) : raw.readDoubleLE(8 * i);
      }
    }
  }
  return { data, shape };
}

/** y converted to x's array type (float32 gradients for float32 inputs). */
function likeTensor(y, x, name) {
  const t = asTensor(y, name);
  if (t.data.constructor === x.data.constructor) return t;
  return { data: x.data.constructor.from(t.data), shape: t.shape };
}

// ---------------------------------------------------------------------------
// The client.

class Client {
  /**
   * target: host:port (any gRPC target). options: timeoutMs per call (default
   * 30000; null: no deadline), typed (send float_data / double_data instead
   * of raw bytes), protoDir, credentials (default insecure).
   */
  constructor(target = '127.0.0.1:50051', options = {}) {
    const { pb, health } = loadProto(options.protoDir);
    this.pb = pb;
    this.target = target;
    this.timeoutMs = options.timeoutMs === undefined ? 30000 : options.timeoutMs;
    this.typed = Boolean(options.typed);
    const credentials = options.credentials || grpc.credentials.createInsecure();
    const channelOptions = {
      'grpc.max_receive_message_length': -1,
      'grpc.max_send_message_length': -1,
    };
    this.stub = new pb.ActivationService(target, credentials, channelOptions);
    this.healthStub = new health.Health(target, credentials, {
      channelOverride: this.stub.getChannel(),
    });
    this.aliases = null;
  }

  close() {
    this.healthStub.close();
    this.stub.close();
  }

  callOptions() {
    return this.timeoutMs === null ? {}
                                   : { deadline: Date.now() + this.timeoutMs };
  }

  /** One unary call as a promise; errors carry codeName besides code. */
  unary(stub, method, request) {
    return new Promise((resolve, reject) => {
      stub[method](request, this.callOptions(), (error, response) => {
        if (error) {
          error.codeName = CODE_NAMES[error.code];
          reject(error);
        } else {
          resolve(response);
        }
      });
    });
  }

  /** The Function enum name of 'gelu', 'SWISH' (an alias) or a number. */
  async functionName(fn) {
    if (typeof fn === 'number') return fn;
    const name = String(fn).trim().toUpperCase().replace(/-/g, '_');
    const values = this.pb.Function.type.value.map((v) => v.name);
    if (values.includes(name)) return name;
    if (this.aliases === null) {  // the server's table of aliases
      const r = await this.unary(this.stub, 'ListFunctions', {});
      this.aliases = {};
      for (const info of r.functions) {
        for (const alias of info.aliases) this.aliases[alias.toUpperCase()] = info.function;
      }
    }
    if (name in this.aliases) return this.aliases[name];
    throw new RangeError(`unknown function '${fn}'; listFunctions() has the names`);
  }

  async spec(fn, { alpha, axis } = {}) {
    const spec = { function: await this.functionName(fn) };
    if (alpha !== undefined && alpha !== null) spec.alpha = Number(alpha);
    if (axis !== undefined && axis !== null) spec.axis = Number(axis);
    return spec;
  }

  async evaluateRequest(fn, x, options = {}) {
    return { spec: await this.spec(fn, options),
             input: toMessage(asTensor(x, 'x'), this.typed) };
  }

  async derivativeRequest(fn, x, options = {}) {
    const input = asTensor(x, 'x');
    const request = { spec: await this.spec(fn, options),
                      input: toMessage(input, this.typed),
                      order: options.order || 1 };
    if (options.upstreamGrad !== undefined && options.upstreamGrad !== null) {
      request.upstream_grad = toMessage(
        likeTensor(options.upstreamGrad, input, 'upstreamGrad'), this.typed);
    }
    return request;
  }

  // -- the RPCs -------------------------------------------------------------

  /** f(x), same shape and array type (options: alpha; axis for softmax). */
  async evaluate(fn, x, options = {}) {
    const r = await this.unary(this.stub, 'Evaluate',
                               await this.evaluateRequest(fn, x, options));
    return fromMessage(r.output);
  }

  /**
   * f'(x), or f''(x) with { order: 2 }; with { upstreamGrad: g } the VJP
   * g * f'(x) (the only form softmax and log_softmax take).
   */
  async derivative(fn, x, options = {}) {
    const r = await this.unary(this.stub, 'Derivative',
                               await this.derivativeRequest(fn, x, options));
    return fromMessage(r.output);
  }

  /** The vector-Jacobian product g^T J(x), shape of x. */
  vjp(fn, x, upstreamGrad, options = {}) {
    return this.derivative(fn, x, { ...options, order: 1, upstreamGrad });
  }

  /**
   * softmax / log_softmax: J[..., i, j] = dy_i/dx_j along the axis (the
   * other axes first). Elementwise: the diagonal f'(x), shape of x (result
   * .diagonal true), or with { dense: true } a [C, C] matrix per row.
   */
  async jacobian(fn, x, options = {}) {
    const r = await this.unary(this.stub, 'Jacobian', {
      spec: await this.spec(fn, options),
      input: toMessage(asTensor(x, 'x'), this.typed),
      dense: Boolean(options.dense),
    });
    return { ...fromMessage(r.jacobian), diagonal: r.diagonal };
  }

  /**
   * Loss and gradient of softmax cross-entropy over logits [..., C]. Give
   * exactly one of labels (class indices, one per row) and targetProbs (the
   * shape of logits). options: reduction 'mean' | 'sum' | 'none',
   * labelSmoothing, ignoreIndex, returnProbabilities. Resolves to
   * { loss, grad, probs } (loss { data, shape }: shape [] unless 'none').
   */
  async softmaxCrossEntropy(logits, options = {}) {
    const z = asTensor(logits, 'logits');
    const { labels, targetProbs } = options;
    if ((labels === undefined) === (targetProbs === undefined)) {
      throw new TypeError('give exactly one of labels and targetProbs');
    }
    const request = {
      logits: toMessage(z, this.typed),
      reduction: (options.reduction || 'mean').toUpperCase(),
      label_smoothing: options.labelSmoothing || 0,
      return_probabilities: Boolean(options.returnProbabilities),
    };
    if (labels !== undefined) {
      request.class_indices = Array.from(labels, (v) => {
        if (!Number.isInteger(Number(v))) {
          throw new TypeError('labels are class indices (integers); use ' +
                              'targetProbs for probabilities');
        }
        return Number(v);
      });
    } else {
      request.target_probs = toMessage(likeTensor(targetProbs, z, 'targetProbs'),
                                       this.typed);
    }
    if (options.ignoreIndex !== undefined) request.ignore_index = options.ignoreIndex;
    const r = await this.unary(this.stub, 'SoftmaxCrossEntropy', request);
    return { loss: fromMessage(r.loss), grad: fromMessage(r.grad_logits),
             probs: r.probabilities ? fromMessage(r.probabilities) : null };
  }

  /** { name: FunctionInfo } in the service's order (fields as in the .proto). */
  async listFunctions() {
    const r = await this.unary(this.stub, 'ListFunctions', {});
    return Object.fromEntries(r.functions.map((f) => [f.name, f]));
  }

  /**
   * One Stream call. calls: an iterable of [op, fn, x] or [op, fn, x,
   * options], op 'evaluate' or 'derivative' (options as derivative()'s).
   * Yields one { data, shape } per call, in order; a bad call ends the
   * stream, and the loop throws the server's error.
   */
  async *stream(calls) {
    const call = this.stub.Stream(this.callOptions());
    let writeError = null;
    const writer = (async () => {
      for (const [op, fn, x, options] of calls) {
        let request;
        if (op === 'evaluate') {
          request = { evaluate: await this.evaluateRequest(fn, x, options) };
        } else if (op === 'derivative') {
          request = { derivative: await this.derivativeRequest(fn, x, options) };
        } else {
          throw new TypeError(`op '${op}' is not evaluate or derivative`);
        }
        if (!call.write(request)) await events.once(call, 'drain');
      }
      call.end();
    })().catch((error) => {
      writeError = error;
      call.cancel();
    });
    try {
      for await (const r of call) yield fromMessage(r[r.response].output);
    } catch (error) {
      await writer;
      if (writeError) throw writeError;
      error.codeName = CODE_NAMES[error.code];
      throw error;
    } finally {
      call.cancel();  // a no-op once the call has ended
    }
    await writer;
    if (writeError) throw writeError;
  }

  /**
   * Gradient-flow diagnostics of an elementwise fn over x (AnalyzeResponse
   * in activation.proto): units, sparsity, saturated_fraction, ...;
   * attenuation = mean_abs_derivative ** layers when options.layers is set.
   */
  async analyze(fn, x, options = {}) {
    const request = { spec: await this.spec(fn, options),
                      input: toMessage(asTensor(x, 'x'), this.typed) };
    if (options.epsilon !== undefined) request.epsilon = options.epsilon;
    if (options.layers !== undefined) request.layers = options.layers;
    const r = await this.unary(this.stub, 'Analyze', request);
    // Without proto-loader's virtual oneof name of the optional field.
    return Object.fromEntries(Object.entries(r).filter(([k]) => !k.startsWith('_')));
  }

  /** grpc.health.v1 status: 'SERVING', 'NOT_SERVING', 'SERVICE_UNKNOWN'. */
  async health(service = '') {
    const r = await this.unary(this.healthStub, 'Check', { service });
    return r.status;
  }
}

// ---------------------------------------------------------------------------
// A server for scripts and tests.

/** A free TCP port on 127.0.0.1 (free when asked; another process may take it). */
function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/** actsvc-server from $ACTSVC_SERVER, else build/ or build-* of this checkout. */
function findServerBinary() {
  if (process.env.ACTSVC_SERVER) return process.env.ACTSVC_SERVER;
  const builds = fs.readdirSync(REPO).filter((d) => /^build(-|$)/.test(d)).sort();
  for (const dir of ['build', ...builds.filter((d) => d !== 'build')]) {
    const file = path.join(REPO, dir, 'server', 'actsvc-server');
    try {
      fs.accessSync(file, fs.constants.X_OK);
      return file;
    } catch (_) { /* try the next build directory */ }
  }
  throw new Error('actsvc-server not found: build it, or set ACTSVC_SERVER');
}

/**
 * actsvc-server on a free loopback port:
 *   const server = await new LocalServer().start();  // server.target
 *   ...; const code = await server.stop();           // SIGTERM, then SIGKILL
 */
class LocalServer {
  constructor(binary, flags = [], startupTimeoutMs = 15000) {
    this.binary = binary || findServerBinary();
    this.flags = flags;
    this.startupTimeoutMs = startupTimeoutMs;
    this.proc = null;
    this.target = null;
    this.log = '';
  }

  async start() {
    for (let attempt = 0; attempt < 3; ++attempt) {  // a port may be taken
      this.target = `127.0.0.1:${await freePort()}`;
      this.log = '';
      this.proc = childProcess.spawn(
        this.binary, [`--address=${this.target}`, ...this.flags],
        { stdio: ['ignore', 'pipe', 'pipe'] });
      this.spawnError = null;
      this.exited = new Promise((resolve) => {
        this.proc.on('exit', resolve);
        this.proc.on('error', (error) => {  // e.g. ENOENT: it never ran
          this.spawnError = error;
          this.log += `${error}\n`;
          resolve();
        });
      });
      for (const s of [this.proc.stdout, this.proc.stderr]) {
        s.on('data', (chunk) => { this.log += chunk; });
      }
      if (await this.waitServing()) return this;
      if (this.spawnError || this.running()) break;  // only an exit is retried
    }
    await this.stop();
    throw new Error(`actsvc-server did not start serving on ${this.target}\n${this.log}`);
  }

  async waitServing() {
    const client = new Client(this.target, { timeoutMs: 500 });
    const deadline = Date.now() + this.startupTimeoutMs;
    try {
      while (Date.now() < deadline) {
        if (!this.running()) return false;
        try {
          if (await client.health() === 'SERVING') return true;
        } catch (_) { /* not listening yet */ }
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      return false;
    } finally {
      client.close();
    }
  }

  running() {
    return this.proc !== null && !this.spawnError && this.proc.exitCode === null &&
           this.proc.signalCode === null;
  }

  /** SIGTERM, SIGKILL after graceMs; resolves to the exit code (or signal). */
  async stop(graceMs = 10000) {
    if (!this.proc) return null;
    const { proc } = this;
    if (this.running()) {
      proc.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), graceMs);
      await this.exited;
      clearTimeout(timer);
    }
    return proc.exitCode !== null ? proc.exitCode : proc.signalCode;
  }
}

module.exports = {
  Client, LocalServer, asTensor, findServerBinary, freePort, fromMessage,
  loadProto, status: grpc.status, toMessage,
};
