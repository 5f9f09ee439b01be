// An LSTM layer (input projection and recurrence) over all T steps in one call, forward and
// backward, for XLA:CPU.
//
// Called through XLA's typed FFI (jax.ffi); build.py beside it builds this file with the
// machine's C++ compiler on first use, and lstm.py registers and calls both handlers. The math is
// that of LSTMCell's input projection followed by lstm_scan.py's recurrence (the
// reference the tests compare with): gates i, f, g (c~), o stacked as [..., 4H]; where
// `valid` is false the state is held and the output is zero. The input projection runs
// inside, a step at a time, so the [T, B, 4H] gate inputs are never written out, and the
// backward pass returns every gradient: the input's and all the parameters'. Its gate
// gradients live one step at a time, so they are never written out either. Under vmap
// (a vectorized sweep) one call takes every member: all arguments get the same leading
// dims, and each member's blocks of rows are computed as in a call of its own, so the
// results are bitwise those of one call per member.
//
// Why a kernel: on XLA:CPU every time step of a scan costs a loop iteration of several
// small fusions on one thread. Here each thread takes a block of the batch's rows for the
// whole sequence (rows are independent), so the threads never wait for each other, and
// each step is a register-blocked matrix product plus one pass of vectorized gate math.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include <sched.h>

#include "parallel.h"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

// exp(x) to about 2 ulp (Cephes' single-precision polynomial after a Cody-Waite
// reduction), written so that the compiler vectorizes loops that call it (libm's expf
// is a scalar call). Inputs are clamped to the range where the result is finite.
inline float Exp(float x) {
  x = x < -87.3f ? -87.3f : (x > 88.3f ? 88.3f : x);  // Not std::min/max: they block vectorizing.
  const float n = std::floor(x * 1.44269504088896341f + 0.5f);
  const float r = x - n * 0.693359375f + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  return p * __builtin_bit_cast(float, bits);
}

inline float Sigmoid(float x) { return 1.0f / (1.0f + Exp(-x)); }
inline float Tanh(float x) { return 1.0f - 2.0f / (Exp(2.0f * x) + 1.0f); }

constexpr int kRowBlock = 6;  // Measured: 6x4 blocks 120 GFLOP/s on one core, 4x4 82.
constexpr int kLanes = 16;
constexpr int kVecs = 4;
constexpr int kColBlock = kVecs * kLanes;

// 16 floats: one AVX-512 register where there is one (GCC's vector extension splits it
// into narrower ones elsewhere). aligned(4): loads and stores need no alignment.
typedef float Vec __attribute__((vector_size(kLanes * sizeof(float)), aligned(4)));

inline Vec Load(const float* p) { return *reinterpret_cast<const Vec*>(p); }
inline void Store(float* p, Vec v) { *reinterpret_cast<Vec*>(p) = v; }

// acc += A[r0:r0+R, :] @ m[:, n0:n0+64]: R x 4 vector sums held in registers while m's rows
// stream past (4 loads and R broadcasts feed 4R FMAs). A is a (row stride lda), or a's
// transpose when kTransA (a is then [K, rows], row stride lda).
template <int R, bool kTransA>
inline void Accumulate(Vec (&acc)[R][kVecs], const float* a, int64_t lda, const float* m,
                       int64_t K, int64_t N, int64_t r0, int64_t n0) {
  for (int64_t k = 0; k < K; ++k) {
    const float* mk = m + k * N + n0;
    Vec w[kVecs];
#pragma GCC unroll 4
    for (int c = 0; c < kVecs; ++c) w[c] = Load(mk + c * kLanes);
#pragma GCC unroll 8
    for (int q = 0; q < R; ++q) {
      const float s = kTransA ? a[k * lda + r0 + q] : a[(r0 + q) * lda + k];
#pragma GCC unroll 4
      for (int c = 0; c < kVecs; ++c) acc[q][c] += s * w[c];
    }
  }
}

// out[r0:r0+R, n0:n0+64] += A[r0:r0+R, :] @ m[:, n0:n0+64] (A as in Accumulate).
template <int R, bool kTransA>
inline void Block(const float* a, int64_t lda, const float* m, int64_t K, int64_t N, float* out,
                  int64_t ldo, int64_t r0, int64_t n0) {
  Vec acc[R][kVecs];
#pragma GCC unroll 8
  for (int q = 0; q < R; ++q)
#pragma GCC unroll 4
    for (int c = 0; c < kVecs; ++c) acc[q][c] = Load(out + (r0 + q) * ldo + n0 + c * kLanes);
  Accumulate<R, kTransA>(acc, a, lda, m, K, N, r0, n0);
#pragma GCC unroll 8
  for (int q = 0; q < R; ++q)
#pragma GCC unroll 4
    for (int c = 0; c < kVecs; ++c) Store(out + (r0 + q) * ldo + n0 + c * kLanes, acc[q][c]);
}

// Calls body(R, r, n0) for the register blocks covering `rows` rows by the first `full`
// columns: blocks of 6 rows (then 4, then 1; R is their std::integral_constant) by 64 columns.
template <typename Body>
void ForEachBlock(int64_t rows, int64_t full, const Body& body) {
  int64_t r = 0;
  for (; r + kRowBlock <= rows; r += kRowBlock)
    for (int64_t n0 = 0; n0 < full; n0 += kColBlock)
      body(std::integral_constant<int, kRowBlock>(), r, n0);
  for (; r + 4 <= rows; r += 4)
    for (int64_t n0 = 0; n0 < full; n0 += kColBlock) body(std::integral_constant<int, 4>(), r, n0);
  for (; r < rows; ++r)
    for (int64_t n0 = 0; n0 < full; n0 += kColBlock) body(std::integral_constant<int, 1>(), r, n0);
}

// out[r, :] += A[r, :] @ m for `rows` rows: A is a ([rows, K], row stride lda) or, when
// kTransA, a's transpose (a is [K, rows]); m is [K, N] row-major, out has row stride ldo.
// Register blocks (ForEachBlock); the columns past the last full block, if any, in plain
// loops.
template <bool kTransA = false>
void MatMulAdd(const float* a, int64_t lda, const float* m, int64_t K, int64_t N, float* out,
               int64_t ldo, int64_t rows) {
  const int64_t full = N - N % kColBlock;
  ForEachBlock(rows, full, [&](auto R, int64_t r, int64_t n0) {
    Block<decltype(R)::value, kTransA>(a, lda, m, K, N, out, ldo, r, n0);
  });
  if (full == N) return;
  for (int64_t q = 0; q < rows; ++q)
    for (int64_t k = 0; k < K; ++k) {
      const float aq = kTransA ? a[k * lda + q] : a[q * lda + k];
      for (int64_t j = full; j < N; ++j) out[q * ldo + j] += aq * m[k * N + j];
    }
}

// z[r, :] = bias + x[r, :] @ kernel_x + h[r, :] @ kernel_h for `rows` rows (z is [rows, 4H],
// x [rows, D], h [rows, H]): one pass per block of z, which stays in registers from the bias
// to the last product (the sums are added in that order, as two MatMulAdd calls would).
template <int R>
inline void GateBlock(const float* x, int64_t D, const float* kernel_x, const float* h,
                      int64_t H, const float* kernel_h, const float* bias, float* z, int64_t G,
                      int64_t r0, int64_t n0) {
  Vec acc[R][kVecs];
#pragma GCC unroll 8
  for (int q = 0; q < R; ++q)
#pragma GCC unroll 4
    for (int c = 0; c < kVecs; ++c) acc[q][c] = Load(bias + n0 + c * kLanes);
  Accumulate<R, false>(acc, x, D, kernel_x, D, G, r0, n0);
  Accumulate<R, false>(acc, h, H, kernel_h, H, G, r0, n0);
#pragma GCC unroll 8
  for (int q = 0; q < R; ++q)
#pragma GCC unroll 4
    for (int c = 0; c < kVecs; ++c) Store(z + (r0 + q) * G + n0 + c * kLanes, acc[q][c]);
}

void GateInputs(const float* x, int64_t D, const float* kernel_x, const float* h, int64_t H,
                const float* kernel_h, const float* bias, float* z, int64_t rows) {
  const int64_t G = 4 * H, full = G - G % kColBlock;
  ForEachBlock(rows, full, [&](auto R, int64_t r, int64_t n0) {
    GateBlock<decltype(R)::value>(x, D, kernel_x, h, H, kernel_h, bias, z, G, r, n0);
  });
  for (int64_t q = 0; q < rows && full < G; ++q)  // Columns past the last full block.
    for (int64_t j = full; j < G; ++j) {
      float sum = bias[j];
      for (int64_t k = 0; k < D; ++k) sum += x[q * D + k] * kernel_x[k * G + j];
      for (int64_t k = 0; k < H; ++k) sum += h[q * H + k] * kernel_h[k * G + j];
      z[q * G + j] = sum;
    }
}

// Blocks to split `rows` batch rows into: one per core this process may use, but no more
// than there are 6-row groups (a block with fewer rows would leave registers half used).
// Blocks depend on the cores, not on which threads are free, so the sums over blocks in
// the backward pass are the same from run to run on a machine.
int Blocks(int64_t rows) {
  cpu_set_t set;
  int cores = sched_getaffinity(0, sizeof(set), &set) == 0 ? CPU_COUNT(&set) : 1;
  return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(cores, rows / kRowBlock)));
}

// Runs body(problem, block, row_begin, row_end) for each of `blocks` (Blocks(rows))
// contiguous blocks of whole 6-row groups of each of `problems` independent layers (the
// members of a vectorized sweep, called once), on XLA's threads and the caller's
// (parallel.h). Each block is a batch slice's whole sequence: rows are independent, so
// blocks never wait for each other. A problem's blocks are those of a call of its own.
template <typename Body>
void ParallelRows(ffi::ThreadPool& pool, int64_t problems, int64_t rows, int blocks,
                  const Body& body) {
  const int64_t groups = (rows + kRowBlock - 1) / kRowBlock;
  auto bounds = [&](int64_t block) {
    return std::min(rows, (groups * block / blocks) * kRowBlock);
  };
  jaxdl::ParallelParts(pool, problems * blocks, [&](int64_t part) {
    const int64_t problem = part / blocks, block = part % blocks;
    body(problem, static_cast<int>(block), bounds(block),
         block + 1 == blocks ? rows : bounds(block + 1));
  });
}

// out [cols, rows] row-major = m [rows, cols] row-major, transposed.
void TransposeInto(const float* m, int64_t rows, int64_t cols, float* out) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) out[c * rows + r] = m[r * cols + c];
}

struct Dims {
  int64_t T, B, D, H;  // Time steps, batch, input features, units.
  int64_t N;           // Independent problems: the product of the leading (vmapped) dims.
};

// The layer's parameters: z = x_t @ kernel_x + bias + h @ kernel_h, gates stacked [..., 4H].
struct Params {
  const float* kernel_x;  // [D, 4H]
  const float* bias;      // [4H]
  const float* kernel_h;  // [H, 4H]
};

// Forward over rows [b0, b1): outputs [T,B,H], c_all/h_all [T,B,H] (the state after each
// step), gates [T,B,4H] (activated i, f, g, o), from x [T,B,D].
void ForwardRows(Dims d, Params p, const float* x, const bool* valid, const float* c0,
                 const float* h0, float* outputs, float* c_all, float* h_all, float* gates,
                 int64_t b0, int64_t b1) {
  const int64_t T = d.T, B = d.B, D = d.D, H = d.H, G = 4 * H, rows = b1 - b0;
  std::vector<float> z(rows * G);
  const float* c_prev = c0 + b0 * H;
  const float* h_prev = h0 + b0 * H;
  for (int64_t t = 0; t < T; ++t) {
    GateInputs(x + (t * B + b0) * D, D, p.kernel_x, h_prev, H, p.kernel_h, p.bias, z.data(), rows);
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t row = t * B + b0 + r;
      float* zr = z.data() + r * G;
      float* gr = gates + row * G;
#pragma omp simd
      for (int64_t j = 0; j < H; ++j) {
        gr[j] = Sigmoid(zr[j]);
        gr[H + j] = Sigmoid(zr[H + j]);
        gr[2 * H + j] = Tanh(zr[2 * H + j]);
        gr[3 * H + j] = Sigmoid(zr[3 * H + j]);
      }
      const float* cp = c_prev + r * H;
      const float* hp = h_prev + r * H;
      float* c = c_all + row * H;
      float* h = h_all + row * H;
      float* out = outputs + row * H;
      if (valid[row]) {
#pragma omp simd
        for (int64_t j = 0; j < H; ++j) {
          c[j] = gr[H + j] * cp[j] + gr[j] * gr[2 * H + j];
          h[j] = gr[3 * H + j] * Tanh(c[j]);
          out[j] = h[j];
        }
      } else {
        std::memcpy(c, cp, sizeof(float) * H);
        std::memcpy(h, hp, sizeof(float) * H);
        std::memset(out, 0, sizeof(float) * H);
      }
    }
    c_prev = c_all + (t * B + b0) * H;
    h_prev = h_all + (t * B + b0) * H;
  }
}

// The gradients of one block of rows: written for the block's rows (dx, dc0, dh0) or summed
// over them (the parameters'; each block has its own, added up after).
struct Grads {
  float* dx;        // [T, B, D]
  float* d_bias;    // [4H]
  float* d_kx;      // [D, 4H]
  float* d_kh;      // [H, 4H]
  float* dc0;       // [B, H]
  float* dh0;       // [B, H]
};

// The forward's inputs and residuals the backward reads (all [T, B, .] time-major).
struct Residuals {
  const bool* valid;   // [T, B]
  const float* x;      // [T, B, D]
  const float* c0;     // [B, H]
  const float* h0;     // [B, H]
  const float* c_all;  // [T, B, H]
  const float* h_all;  // [T, B, H]
  const float* gates;  // [T, B, 4H], activated
};

// Backward over rows [b0, b1), from the cotangents of (c_last, h_last, outputs). Each step's
// pre-activation gate gradients dz [rows, 4H] live only for that step: they give dx_t and
// the recurrent gradient, and add x_t^T dz and h_{t-1}^T dz to the kernels' gradients.
// kernel_x_t and kernel_h_t are the kernels transposed ([4H, D] and [4H, H]).
void BackwardRows(Dims d, const float* kernel_x_t, const float* kernel_h_t, Residuals res,
                  const float* dc_last, const float* dh_last, const float* d_outputs, Grads out,
                  int64_t b0, int64_t b1) {
  const int64_t T = d.T, B = d.B, D = d.D, H = d.H, G = 4 * H, rows = b1 - b0;
  std::vector<float> dc_next(dc_last + b0 * H, dc_last + b1 * H);
  std::vector<float> dh_next(dh_last + b0 * H, dh_last + b1 * H);
  std::vector<float> dh_in(rows * H);
  std::vector<float> dz_rows(rows * G);
  std::fill(out.d_bias, out.d_bias + G, 0.0f);
  std::fill(out.d_kx, out.d_kx + D * G, 0.0f);
  std::fill(out.d_kh, out.d_kh + H * G, 0.0f);
  for (int64_t t = T - 1; t >= 0; --t) {
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t row = t * B + b0 + r;
      const float* g = res.gates + row * G;
      const float* c_new = res.c_all + row * H;
      const float* c_in = t > 0 ? res.c_all + ((t - 1) * B + b0 + r) * H : res.c0 + (b0 + r) * H;
      const float* d_out = d_outputs + row * H;
      float* dz = dz_rows.data() + r * G;
      float* dcn = dc_next.data() + r * H;
      float* dhn = dh_next.data() + r * H;
      float* dhi = dh_in.data() + r * H;
      if (res.valid[row]) {
#pragma omp simd
        for (int64_t j = 0; j < H; ++j) {
          const float i = g[j], f = g[H + j], gg = g[2 * H + j], o = g[3 * H + j];
          const float dh = d_out[j] + dhn[j];
          const float tanh_c = Tanh(c_new[j]);
          const float dc = dcn[j] + dh * o * (1.0f - tanh_c * tanh_c);
          dz[j] = dc * gg * i * (1.0f - i);
          dz[H + j] = dc * c_in[j] * f * (1.0f - f);
          dz[2 * H + j] = dc * i * (1.0f - gg * gg);
          dz[3 * H + j] = dh * tanh_c * o * (1.0f - o);
          dcn[j] = dc * f;
          dhi[j] = 0.0f;
        }
#pragma omp simd
        for (int64_t j = 0; j < G; ++j) out.d_bias[j] += dz[j];
      } else {  // The state was held: gradients pass straight through; the gates get none.
        std::memset(dz, 0, sizeof(float) * G);
        std::memcpy(dhi, dhn, sizeof(float) * H);
      }
    }
    const float* x_t = res.x + (t * B + b0) * D;
    const float* h_prev = t > 0 ? res.h_all + ((t - 1) * B + b0) * H : res.h0 + b0 * H;
    float* dx_t = out.dx + (t * B + b0) * D;
    std::memset(dx_t, 0, sizeof(float) * rows * D);
    MatMulAdd(dz_rows.data(), G, kernel_x_t, G, D, dx_t, D, rows);
    MatMulAdd(dz_rows.data(), G, kernel_h_t, G, H, dh_in.data(), H, rows);
    MatMulAdd</*kTransA=*/true>(x_t, D, dz_rows.data(), rows, G, out.d_kx, G, D);
    MatMulAdd</*kTransA=*/true>(h_prev, H, dz_rows.data(), rows, G, out.d_kh, G, H);
    dh_next.swap(dh_in);
  }
  std::memcpy(out.dc0 + b0 * H, dc_next.data(), sizeof(float) * rows * H);
  std::memcpy(out.dh0 + b0 * H, dh_next.data(), sizeof(float) * rows * H);
}

// The dims of a call: T, B, D from x's last three, H from kernel_h's [.., H, 4H], and N, the
// product of x's leading dims. Under vmap (vmap_method="broadcast_all") every argument has
// the same leading dims: problem n's part of an argument starts at n times its own size.
ffi::Error ReadDims(ffi::Buffer<ffi::F32>& x, ffi::Buffer<ffi::F32>& kernel_h, Dims* d) {
  auto xd = x.dimensions();
  auto kh = kernel_h.dimensions();
  if (xd.size() < 3) return ffi::Error::InvalidArgument("x must be [..., T, B, D]");
  const size_t lead = xd.size() - 3;
  if (kh.size() != lead + 2 || kh[lead + 1] != 4 * kh[lead])
    return ffi::Error::InvalidArgument("kernel_h must be [..., H, 4H]");
  int64_t n = 1;
  for (size_t i = 0; i < lead; ++i) {
    if (kh[i] != xd[i]) return ffi::Error::InvalidArgument("leading dims must be x's");
    n *= xd[i];
  }
  *d = Dims{xd[lead], xd[lead + 1], xd[lead + 2], kh[lead], n};
  return ffi::Error::Success();
}

// Whether an argument holds N problems of `per_problem` elements each; an error naming it.
template <typename T>
ffi::Error CheckSize(const T& buffer, Dims d, int64_t per_problem, const char* what) {
  if (static_cast<int64_t>(buffer.element_count()) != d.N * per_problem)
    return ffi::Error::InvalidArgument(what);
  return ffi::Error::Success();
}

// Whether kernel_x [.., D, 4H] and valid [.., T, B] fit the dims read from x.
ffi::Error CheckDims(Dims d, ffi::Buffer<ffi::F32>& kernel_x, ffi::Buffer<ffi::PRED>& valid) {
  auto kx = kernel_x.dimensions();
  if (kx.size() < 2 || kx[kx.size() - 2] != d.D || kx[kx.size() - 1] != 4 * d.H)
    return ffi::Error::InvalidArgument("kernel_x must be [..., D, 4H]");
  if (auto e = CheckSize(kernel_x, d, d.D * 4 * d.H, "kernel_x must be [..., D, 4H]"); e.failure())
    return e;
  return CheckSize(valid, d, d.T * d.B, "valid must be [..., T, B]");
}

ffi::Error LstmForward(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> kernel_x, ffi::Buffer<ffi::F32> bias,
                       ffi::Buffer<ffi::F32> kernel_h, ffi::Buffer<ffi::F32> x,
                       ffi::Buffer<ffi::PRED> valid, ffi::Buffer<ffi::F32> c0,
                       ffi::Buffer<ffi::F32> h0, ffi::ResultBuffer<ffi::F32> outputs,
                       ffi::ResultBuffer<ffi::F32> c_all, ffi::ResultBuffer<ffi::F32> h_all,
                       ffi::ResultBuffer<ffi::F32> gates) {
  Dims d;
  if (auto error = ReadDims(x, kernel_h, &d); error.failure()) return error;
  if (auto error = CheckDims(d, kernel_x, valid); error.failure()) return error;
  const int64_t T = d.T, B = d.B, D = d.D, H = d.H, G = 4 * H;
  ParallelRows(pool, d.N, B, Blocks(B), [&](int64_t n, int, int64_t b0, int64_t b1) {
    const Params p{kernel_x.typed_data() + n * D * G, bias.typed_data() + n * G,
                   kernel_h.typed_data() + n * H * G};
    ForwardRows(d, p, x.typed_data() + n * T * B * D, valid.typed_data() + n * T * B,
                c0.typed_data() + n * B * H, h0.typed_data() + n * B * H,
                outputs->typed_data() + n * T * B * H, c_all->typed_data() + n * T * B * H,
                h_all->typed_data() + n * T * B * H, gates->typed_data() + n * T * B * G, b0, b1);
  });
  return ffi::Error::Success();
}

ffi::Error LstmBackward(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> kernel_x, ffi::Buffer<ffi::F32> kernel_h,
                        ffi::Buffer<ffi::PRED> valid, ffi::Buffer<ffi::F32> x,
                        ffi::Buffer<ffi::F32> c0, ffi::Buffer<ffi::F32> h0,
                        ffi::Buffer<ffi::F32> c_all, ffi::Buffer<ffi::F32> h_all,
                        ffi::Buffer<ffi::F32> gates, ffi::Buffer<ffi::F32> dc_last,
                        ffi::Buffer<ffi::F32> dh_last, ffi::Buffer<ffi::F32> d_outputs,
                        ffi::ResultBuffer<ffi::F32> dx, ffi::ResultBuffer<ffi::F32> d_bias,
                        ffi::ResultBuffer<ffi::F32> d_kernel_x,
                        ffi::ResultBuffer<ffi::F32> d_kernel_h, ffi::ResultBuffer<ffi::F32> dc0,
                        ffi::ResultBuffer<ffi::F32> dh0) {
  Dims d;
  if (auto error = ReadDims(x, kernel_h, &d); error.failure()) return error;
  if (auto error = CheckDims(d, kernel_x, valid); error.failure()) return error;
  const int64_t T = d.T, B = d.B, D = d.D, H = d.H, G = 4 * H;
  // Each problem's kernels transposed ([4H, D] and [4H, H]), one after the other.
  std::vector<float> kernel_x_t(d.N * G * D), kernel_h_t(d.N * G * H);
  for (int64_t n = 0; n < d.N; ++n) {
    TransposeInto(kernel_x.typed_data() + n * D * G, D, G, kernel_x_t.data() + n * G * D);
    TransposeInto(kernel_h.typed_data() + n * H * G, H, G, kernel_h_t.data() + n * G * H);
  }
  // Each block sums its rows' parameter gradients into its own slot; added up below in
  // block order, so a run is bitwise repeatable for a given number of cores, and each
  // problem's sums are those of a call of its own.
  const int64_t slot = G * (1 + D + H);
  const int blocks = Blocks(B);  // Once: the slots below are sized by it.
  std::vector<float> partial(d.N * blocks * slot);
  ParallelRows(pool, d.N, B, blocks, [&](int64_t n, int block, int64_t b0, int64_t b1) {
    float* own = partial.data() + (n * blocks + block) * slot;
    const Residuals res{valid.typed_data() + n * T * B, x.typed_data() + n * T * B * D,
                        c0.typed_data() + n * B * H, h0.typed_data() + n * B * H,
                        c_all.typed_data() + n * T * B * H, h_all.typed_data() + n * T * B * H,
                        gates.typed_data() + n * T * B * G};
    const Grads grads{dx->typed_data() + n * T * B * D, own, own + G, own + G * (1 + D),
                      dc0->typed_data() + n * B * H, dh0->typed_data() + n * B * H};
    BackwardRows(d, kernel_x_t.data() + n * G * D, kernel_h_t.data() + n * G * H, res,
                 dc_last.typed_data() + n * B * H, dh_last.typed_data() + n * B * H,
                 d_outputs.typed_data() + n * T * B * H, grads, b0, b1);
  });
  // d_bias, d_kernel_x and d_kernel_h are consecutive in each slot; split them on the way out.
  const int64_t sizes[3] = {G, D * G, H * G};
  for (int64_t n = 0; n < d.N; ++n) {
    float* const targets[3] = {d_bias->typed_data() + n * G, d_kernel_x->typed_data() + n * D * G,
                               d_kernel_h->typed_data() + n * H * G};
    int64_t offset = 0;
    for (int part = 0; part < 3; ++part) {
      float* target = targets[part];
      std::fill(target, target + sizes[part], 0.0f);
      for (int block = 0; block < blocks; ++block) {
        const float* from = partial.data() + (n * blocks + block) * slot + offset;
        for (int64_t j = 0; j < sizes[part]; ++j) target[j] += from[j];
      }
      offset += sizes[part];
    }
  }
  return ffi::Error::Success();
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(JaxdlLstmForward, LstmForward,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()         // XLA's intra-op threads
                                  .Arg<ffi::Buffer<ffi::F32>>()   // kernel_x [D, 4H]
                                  .Arg<ffi::Buffer<ffi::F32>>()   // bias [4H]
                                  .Arg<ffi::Buffer<ffi::F32>>()   // kernel_h [H, 4H]
                                  .Arg<ffi::Buffer<ffi::F32>>()   // x [T, B, D]
                                  .Arg<ffi::Buffer<ffi::PRED>>()  // valid [T, B]
                                  .Arg<ffi::Buffer<ffi::F32>>()   // c0 [B, H]
                                  .Arg<ffi::Buffer<ffi::F32>>()   // h0 [B, H]
                                  .Ret<ffi::Buffer<ffi::F32>>()   // outputs [T, B, H]
                                  .Ret<ffi::Buffer<ffi::F32>>()   // c_all [T, B, H]
                                  .Ret<ffi::Buffer<ffi::F32>>()   // h_all [T, B, H]
                                  .Ret<ffi::Buffer<ffi::F32>>()); // gates [T, B, 4H]

XLA_FFI_DEFINE_HANDLER_SYMBOL(JaxdlLstmBackward, LstmBackward,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()         // XLA's intra-op threads
                                  .Arg<ffi::Buffer<ffi::F32>>()   // kernel_x [D, 4H]
                                  .Arg<ffi::Buffer<ffi::F32>>()   // kernel_h [H, 4H]
                                  .Arg<ffi::Buffer<ffi::PRED>>()  // valid [T, B]
                                  .Arg<ffi::Buffer<ffi::F32>>()   // x [T, B, D]
                                  .Arg<ffi::Buffer<ffi::F32>>()   // c0 [B, H]
                                  .Arg<ffi::Buffer<ffi::F32>>()   // h0 [B, H]
                                  .Arg<ffi::Buffer<ffi::F32>>()   // c_all [T, B, H]
                                  .Arg<ffi::Buffer<ffi::F32>>()   // h_all [T, B, H]
                                  .Arg<ffi::Buffer<ffi::F32>>()   // gates [T, B, 4H]
                                  .Arg<ffi::Buffer<ffi::F32>>()   // dc_last [B, H]
                                  .Arg<ffi::Buffer<ffi::F32>>()   // dh_last [B, H]
                                  .Arg<ffi::Buffer<ffi::F32>>()   // d_outputs [T, B, H]
                                  .Ret<ffi::Buffer<ffi::F32>>()   // dx [T, B, D]
                                  .Ret<ffi::Buffer<ffi::F32>>()   // d_bias [4H]
                                  .Ret<ffi::Buffer<ffi::F32>>()   // d_kernel_x [D, 4H]
                                  .Ret<ffi::Buffer<ffi::F32>>()   // d_kernel_h [H, 4H]
                                  .Ret<ffi::Buffer<ffi::F32>>()   // dc0 [B, H]
                                  .Ret<ffi::Buffer<ffi::F32>>()); // dh0 [B, H]
