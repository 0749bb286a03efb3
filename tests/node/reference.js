'use strict';
// float64 references for tests/node: the stable forms of SPEC.md §1, written
// with Math only. gelu needs erfc, which JavaScript lacks: its values are
// tabulated instead (GELU_TABLE).

const SELU_LAMBDA = 1.0507009873554805;
const SELU_ALPHA = 1.6732632423543772;
const GELU_TANH_C = Math.sqrt(2 / Math.PI);
const GELU_TANH_K = 0.044715;

const DEFAULT_ALPHA = { leaky_relu: 0.01, elu: 1 };

function sigmoid(x) {
  return x >= 0 ? 1 / (1 + Math.exp(-x)) : Math.exp(x) / (1 + Math.exp(x));
}

// sigma'(x) = e^-|x| / (1 + e^-|x|)^2, sigma''(x) = -sigma'(x) tanh(x/2).
function sigmoid1(x) {
  const e = Math.exp(-Math.abs(x));
  return e / ((1 + e) * (1 + e));
}

function sigmoid2(x) {
  return -sigmoid1(x) * Math.tanh(x / 2);
}

function sech2(x) {
  const e = Math.exp(-2 * Math.abs(x));
  return 4 * e / ((1 + e) * (1 + e));
}

// gelu_tanh(x) = x sigma(2u) with u = c (x + k x^3): 1/2 (1 + tanh u) is
// sigma(2u), which keeps its digits where 1 + tanh u cancels.
function geluTanh(x, order) {
  const u = GELU_TANH_C * (x + GELU_TANH_K * x * x * x);
  const du = GELU_TANH_C * (1 + 3 * GELU_TANH_K * x * x);
  const ddu = GELU_TANH_C * 6 * GELU_TANH_K * x;
  const s = sigmoid(2 * u);
  const s1 = sigmoid1(2 * u);
  if (order === 0) return x * s;
  if (order === 1) return s + 2 * x * s1 * du;
  const s2 = -s1 * Math.tanh(u);  // sigma''(2u)
  return 4 * s1 * du + 2 * x * s1 * ddu + 4 * x * s2 * du * du;
}

function elu(x, order, alpha) {
  if (x > 0) return order === 0 ? x : order === 1 ? 1 : 0;
  return order === 0 ? alpha * Math.expm1(x) : alpha * Math.exp(x);
}

/** f (order 0), f' (1) or f'' (2) of an elementwise function at x. */
function elementwise(name, x, order, alpha = DEFAULT_ALPHA[name]) {
  switch (name) {
    case 'identity':
      return [x, 1, 0][order];
    case 'sigmoid':
      return [sigmoid, sigmoid1, sigmoid2][order](x);
    case 'tanh':
      return [Math.tanh(x), sech2(x), -2 * Math.tanh(x) * sech2(x)][order];
    case 'relu':
      return [Math.max(0, x), x > 0 ? 1 : 0, 0][order];
    case 'leaky_relu':
      return [x > 0 ? x : alpha * x, x > 0 ? 1 : alpha, 0][order];
    case 'gelu_tanh':
      return geluTanh(x, order);
    case 'silu':
      return [x * sigmoid(x),
              sigmoid(x) * (1 + x * sigmoid(-x)),
              sigmoid1(x) * (2 - x * Math.tanh(x / 2))][order];
    case 'softplus':
      return [Math.max(x, 0) + Math.log1p(Math.exp(-Math.abs(x))),
              sigmoid(x), sigmoid1(x)][order];
    case 'elu':
      return elu(x, order, alpha);
    case 'selu':
      return SELU_LAMBDA * elu(x, order, SELU_ALPHA);
    default:
      throw new Error(`no reference for ${name}`);
  }
}

// gelu(x) = x Phi(x), gelu'(x) = Phi(x) + x phi(x), gelu''(x) = phi(x)(2 - x^2)
// at exactly representable x, from mpmath (ncdf, npdf) at 40 digits.
const GELU_TABLE = [
  [-8, -4.9767684594174273e-15, -3.979607261086796e-14, -3.1324080717928732e-13],
  [-3, -0.0040496940948902836, -0.011945647204183927, -0.03102293888356605],
  [-1, -0.15865525393145705, -0.083315470587686298, 0.24197072451914335],
  [-0.5, -0.15426876936299345, 0.13250487534383716, 0.61611432183752409],
  [0, 0, 0.5, 0.79788456080286536],
  [0.5, 0.34573123063700655, 0.86749512465616284, 0.61611432183752409],
  [1, 0.84134474606854295, 1.0833154705876863, 0.24197072451914335],
  [2, 1.9544997361036416, 1.0852318010781969, -0.1079819330263761],
  [3, 2.9959503059051097, 1.0119456472041839, -0.03102293888356605],
];

/** Row-wise softmax of a [rows, C] row-major array. */
function softmaxRows(z, C) {
  const p = new Float64Array(z.length);
  for (let r = 0; r < z.length / C; ++r) {
    const row = z.slice(r * C, (r + 1) * C);
    const max = Math.max(...row);
    let sum = 0;
    for (let j = 0; j < C; ++j) sum += (p[r * C + j] = Math.exp(row[j] - max));
    for (let j = 0; j < C; ++j) p[r * C + j] /= sum;
  }
  return p;
}

/** log(sum(exp(row))) of each row of a [rows, C] array. */
function logsumexpRows(z, C) {
  const out = [];
  for (let r = 0; r < z.length / C; ++r) {
    const row = Array.from(z.slice(r * C, (r + 1) * C));
    const max = Math.max(...row);
    out.push(max + Math.log(row.reduce((s, v) => s + Math.exp(v - max), 0)));
  }
  return out;
}

/** The distance in float32 units in the last place between a and b. */
function ulps32(a, b) {
  const bits = (v) => {
    const i = new Int32Array(new Float32Array([v]).buffer)[0];
    return i < 0 ? -0x80000000 - i : i;  // monotonic over the signed floats
  };
  return Math.abs(bits(a) - bits(b));
}

module.exports = {
  DEFAULT_ALPHA, GELU_TABLE, elementwise, logsumexpRows, sigmoid, sigmoid1,
  softmaxRows, ulps32,
};
