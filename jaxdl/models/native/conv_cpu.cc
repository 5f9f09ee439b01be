// 2-D convolutions (NHWC inputs, HWIO kernels, stride 1) and their kernel gradient, for
// XLA:CPU.
//
// Called through XLA's typed FFI (jax.ffi); build.py beside it builds this file with the
// machine's C++ compiler on first use, and conv.py registers both handlers and makes a
// differentiable layer of them. The convolution takes its padding as attributes: the zeros
// are never written, and the products with them are skipped (output pixels are grouped by
// which kernel taps land inside the input). The input gradient is the same routine on the
// output gradient, padded by the kernel's size less the forward padding, with the flipped,
// transposed kernel, so two routines cover the forward and the backward pass; for a
// 'VALID' layer that padding held 28% of the products (conv2 of the seed CNN), all zeros.
// A third handler fuses a convolution with its bias, relu and max pooling (one image at a
// time, its output kept in cache), and writes only the pooled values and each window's
// index of its maximum. The math is that of lax.conv_general_dilated and of the unfused
// layers (the references the tests compare with).
//
// Why a kernel: XLA:CPU's convolutions (YNNPACK's, or Eigen's with
// --xla_cpu_experimental_ynn_fusion_type=-individual_convolution) ran the seed CNN's
// gradients at a fraction of the machine's matmul rate. Here every output is an implicit
// matrix product (no patch matrix is written): a block of 12 output pixels by 32 channels
// stays in registers while the kernel's rows stream past, and the batch is split over the
// cores. Measured on one core for the seed CNN's second convolution: 6 x 64 blocks ran at
// 55 GFLOP/s (64 channels of the kernel's 288 rows, 73 KB, stream from L2 for every block),
// 12 x 32 blocks at 86 (half as many bytes per multiply-add).

#include <algorithm>
#include <cstdint>
#include <vector>

#include "parallel.h"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;
using jaxdl::ParallelParts;

namespace {

constexpr int kLanes = 16;

// 16 floats: one AVX-512 register where there is one (GCC's vector extension splits it
// into narrower ones elsewhere). aligned(4): loads and stores need no alignment.
typedef float Vec __attribute__((vector_size(kLanes * sizeof(float)), aligned(4)));

inline Vec Load(const float* p) { return *reinterpret_cast<const Vec*>(p); }
inline void Store(float* p, Vec v) { *reinterpret_cast<Vec*>(p) = v; }

// 16 int32 lanes (comparison masks, window positions) and 16 bytes (pooling indices).
typedef int32_t VecI __attribute__((vector_size(kLanes * sizeof(int32_t))));
typedef int8_t VecB __attribute__((vector_size(kLanes)));

inline VecI LoadBytes(const int8_t* p) {
  VecB bytes;
  __builtin_memcpy(&bytes, p, sizeof(bytes));
  return __builtin_convertvector(bytes, VecI);
}

// Where each position d of a k x k pooling window lies from the window's corner, in an
// [Ho, Wo, F] image: ((d / k) * Wo + d % k) * F, row-major, computed once per call.
std::vector<int64_t> WindowOffsets(int64_t k, int64_t Wo, int64_t F) {
  std::vector<int64_t> offsets(k * k);
  for (int64_t d = 0; d < k * k; ++d) offsets[d] = ((d / k) * Wo + d % k) * F;
  return offsets;
}

struct Shape {
  int64_t B, H, W, C;  // Input: batch, height, width, channels.
  int64_t KH, KW, F;   // Kernel: height, width, output channels.
  int64_t Ho() const { return H - KH + 1; }
  int64_t Wo() const { return W - KW + 1; }
  int64_t K() const { return KH * KW * C; }  // Products summed per output.
};

// The forward routine's geometry: the input as if padded with zeros (top, bottom, left,
// right), which are never written: taps that would read them are skipped.
struct Padded {
  Shape s;  // Of the unpadded input (s.Ho() etc. are not used here).
  int64_t PT, PB, PL, PR;
  int64_t Ho() const { return s.H + PT + PB - s.KH + 1; }
  int64_t Wo() const { return s.W + PL + PR - s.KW + 1; }
};

// A run of output rows (or columns) whose kernel taps that land inside the input are the
// same: [first, end) of the output, taps [k0, k1).
struct Run {
  int64_t first, end, k0, k1;
};

// Splits [0, out) into runs: output o reads input o + k - pad for tap k, in [0, in).
std::vector<Run> Runs(int64_t out, int64_t in, int64_t kernel, int64_t pad) {
  std::vector<Run> runs;
  for (int64_t o = 0; o < out; ++o) {
    const int64_t k0 = std::max<int64_t>(0, pad - o), k1 = std::min(kernel, in + pad - o);
    if (!runs.empty() && runs.back().k0 == k0 && runs.back().k1 == k1) runs.back().end = o + 1;
    else runs.push_back(Run{o, o + 1, k0, k1});
  }
  return runs;
}

// Output pixels with the same taps: the rows of one run by the columns of another, in every
// image; `first` numbers its pixels among all classes' (class-major order).
struct PixelClass {
  Run rows, cols;
  int64_t first, count;
};

// The classes of the output's first `rows` rows and `cols` columns (all of them by default).
std::vector<PixelClass> PixelClasses(const Padded& g, int64_t rows = -1, int64_t cols = -1) {
  std::vector<PixelClass> classes;
  int64_t first = 0;
  for (const Run& r : Runs(rows < 0 ? g.Ho() : rows, g.s.H, g.s.KH, g.PT))
    for (const Run& c : Runs(cols < 0 ? g.Wo() : cols, g.s.W, g.s.KW, g.PL)) {
      const int64_t count = g.s.B * (r.end - r.first) * (c.end - c.first);
      classes.push_back(PixelClass{r, c, first, count});
      first += count;
    }
  return classes;
}

// Where pixels i, i + 1, ..., i + n - 1 of a class read (the input offset of tap (0, 0),
// which may lie outside the input: only the class's taps are added to it) and write.
inline void Locate(const Padded& g, const PixelClass& pc, int64_t i, int n, int64_t* src,
                   int64_t* dst) {
  const int64_t rows = pc.rows.end - pc.rows.first, cols = pc.cols.end - pc.cols.first;
  int64_t b = i / (rows * cols), row = (i / cols) % rows, col = i % cols;  // Within the class.
  for (int r = 0; r < n; ++r) {
    const int64_t oy = pc.rows.first + row, ox = pc.cols.first + col;
    src[r] = ((b * g.s.H + oy - g.PT) * g.s.W + ox - g.PL) * g.s.C;
    dst[r] = ((b * g.Ho() + oy) * g.Wo() + ox) * g.s.F;
    if (++col == cols) {
      col = 0;
      if (++row == rows) row = 0, ++b;
    }
  }
}

// y[pixel r, f0:f0+16V] = sum over the class's taps (ky, kx) and channels c of
// x[src[r] + (ky * W + kx) * C + c] * w[ky, kx, c, f0:f0+16V]: R x V vector sums stay in
// registers; within one tap the products read consecutive channels.
template <int R, int V>
inline void ConvBlock(const Shape& s, const PixelClass& pc, const float* x, const float* w,
                      float* y, const int64_t* src, const int64_t* dst, int64_t f0) {
  Vec acc[R][V] = {};
  for (int64_t ky = pc.rows.k0; ky < pc.rows.k1; ++ky)
    for (int64_t kx = pc.cols.k0; kx < pc.cols.k1; ++kx) {
      const int64_t tap = (ky * s.W + kx) * s.C;
      const float* wk = w + ((ky * s.KW + kx) * s.C) * s.F + f0;
      for (int64_t c = 0; c < s.C; ++c, wk += s.F) {
        Vec wv[V];
#pragma GCC unroll 4
        for (int v = 0; v < V; ++v) wv[v] = Load(wk + v * kLanes);
#pragma GCC unroll 12
        for (int r = 0; r < R; ++r) {
          const float a = x[src[r] + tap + c];
#pragma GCC unroll 4
          for (int v = 0; v < V; ++v) acc[r][v] += a * wv[v];
        }
      }
    }
#pragma GCC unroll 12
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < V; ++v) Store(y + dst[r] + f0 + v * kLanes, acc[r][v]);
}

// Channels past the last multiple of 16, one product at a time.
void ConvTail(const Shape& s, const PixelClass& pc, const float* x, const float* w, float* y,
              int64_t src, int64_t dst, int64_t f0) {
  for (int64_t f = f0; f < s.F; ++f) {
    float sum = 0.0f;
    for (int64_t ky = pc.rows.k0; ky < pc.rows.k1; ++ky)
      for (int64_t kx = pc.cols.k0; kx < pc.cols.k1; ++kx)
        for (int64_t c = 0; c < s.C; ++c)
          sum += x[src + (ky * s.W + kx) * s.C + c] * w[((ky * s.KW + kx) * s.C + c) * s.F + f];
    y[dst + f] = sum;
  }
}

// Pixels [i, i + R) of one class, every output channel.
template <int R>
void ConvPixels(const Padded& g, const PixelClass& pc, const float* x, const float* w, float* y,
                int64_t i) {
  int64_t src[R], dst[R];
  Locate(g, pc, i, R, src, dst);
  int64_t f0 = 0;
  for (; f0 + 32 <= g.s.F; f0 += 32) ConvBlock<R, 2>(g.s, pc, x, w, y, src, dst, f0);
  if (f0 + 16 <= g.s.F) ConvBlock<R, 1>(g.s, pc, x, w, y, src, dst, f0), f0 += 16;
  if (f0 < g.s.F)
    for (int r = 0; r < R; ++r) ConvTail(g.s, pc, x, w, y, src[r], dst[r], f0);
}

// Output pixels [begin, end) in class-major order: blocks of 12 pixels with the same taps,
// then 4, then one at a time.
void ConvRange(const Padded& g, const std::vector<PixelClass>& classes, const float* x,
               const float* w, float* y, int64_t begin, int64_t end) {
  for (const PixelClass& pc : classes) {
    int64_t i = std::max(begin, pc.first) - pc.first;
    const int64_t stop = std::min(end, pc.first + pc.count) - pc.first;
    for (; i + 12 <= stop; i += 12) ConvPixels<12>(g, pc, x, w, y, i);
    for (; i + 4 <= stop; i += 4) ConvPixels<4>(g, pc, x, w, y, i);
    for (; i < stop; ++i) ConvPixels<1>(g, pc, x, w, y, i);
  }
}

// The input offset of each of the K = KH * KW * C products that make one output pixel,
// relative to the pixel's top-left input element: tap (ky, kx), channel c.
std::vector<int64_t> ProductOffsets(const Shape& s) {
  std::vector<int64_t> offsets;
  offsets.reserve(s.K());
  for (int64_t ky = 0; ky < s.KH; ++ky)
    for (int64_t kx = 0; kx < s.KW; ++kx)
      for (int64_t c = 0; c < s.C; ++c) offsets.push_back((ky * s.W + kx) * s.C + c);
  return offsets;
}

// dw[k, f0:f0+16V] for the R products k0..k0+R over images [b0, b1): the products'
// inputs times the output gradient, summed over every output pixel.
template <int R, int V>
inline void GradBlock(const Shape& s, const float* x, const float* dy, float* dw,
                      const int64_t* offsets, int64_t k0, int64_t f0, int64_t b0, int64_t b1) {
  Vec acc[R][V];
#pragma GCC unroll 12
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < V; ++v) acc[r][v] = Load(dw + (k0 + r) * s.F + f0 + v * kLanes);
  int64_t off[R];
  for (int r = 0; r < R; ++r) off[r] = offsets[k0 + r];
  const int64_t Ho = s.Ho(), Wo = s.Wo();
  for (int64_t b = b0; b < b1; ++b)
    for (int64_t oy = 0; oy < Ho; ++oy) {
      const float* row = x + ((b * s.H + oy) * s.W) * s.C;
      const float* g = dy + ((b * Ho + oy) * Wo) * s.F + f0;
      for (int64_t ox = 0; ox < Wo; ++ox, row += s.C, g += s.F) {
        Vec gv[V];
#pragma GCC unroll 4
        for (int v = 0; v < V; ++v) gv[v] = Load(g + v * kLanes);
#pragma GCC unroll 12
        for (int r = 0; r < R; ++r) {
          const float a = row[off[r]];
#pragma GCC unroll 4
          for (int v = 0; v < V; ++v) acc[r][v] += a * gv[v];
        }
      }
    }
#pragma GCC unroll 12
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < V; ++v) Store(dw + (k0 + r) * s.F + f0 + v * kLanes, acc[r][v]);
}

// dw[:, f0:f0+16V] in blocks of 12 products, then 8, 4 and 1 (a first layer's 3 x 3 x 1
// kernel has 9: one pass over the output gradient for 8 of them, not one for each).
template <int V>
void GradColumns(const Shape& s, const float* x, const float* dy, float* dw,
                 const int64_t* offsets, int64_t f0, int64_t b0, int64_t b1) {
  int64_t k = 0;
  for (; k + 12 <= s.K(); k += 12) GradBlock<12, V>(s, x, dy, dw, offsets, k, f0, b0, b1);
  for (; k + 8 <= s.K(); k += 8) GradBlock<8, V>(s, x, dy, dw, offsets, k, f0, b0, b1);
  for (; k + 4 <= s.K(); k += 4) GradBlock<4, V>(s, x, dy, dw, offsets, k, f0, b0, b1);
  for (; k < s.K(); ++k) GradBlock<1, V>(s, x, dy, dw, offsets, k, f0, b0, b1);
}

void GradTail(const Shape& s, const float* x, const float* dy, float* dw,
              const int64_t* offsets, int64_t f0, int64_t b0, int64_t b1) {
  const int64_t Ho = s.Ho(), Wo = s.Wo();
  for (int64_t b = b0; b < b1; ++b)
    for (int64_t oy = 0; oy < Ho; ++oy)
      for (int64_t ox = 0; ox < Wo; ++ox) {
        const float* src = x + ((b * s.H + oy) * s.W + ox) * s.C;
        const float* g = dy + ((b * Ho + oy) * Wo + ox) * s.F;
        for (int64_t k = 0; k < s.K(); ++k)
          for (int64_t f = f0; f < s.F; ++f) dw[k * s.F + f] += src[offsets[k]] * g[f];
      }
}

// Images per chunk of about 512 output pixels: a chunk's inputs and gradients stay in
// cache while every block of products passes over them.
int64_t GradChunk(const Shape& s) { return std::max<int64_t>(1, 512 / (s.Ho() * s.Wo())); }

// Adds images [b0, b1)'s share of the kernel gradient to dw [K, F], chunk by chunk.
void GradImages(const Shape& s, const float* x, const float* dy, float* dw,
                const std::vector<int64_t>& offsets, int64_t b0, int64_t b1) {
  const int64_t chunk = GradChunk(s);
  for (int64_t c0 = b0; c0 < b1; c0 += chunk) {
    const int64_t c1 = std::min(b1, c0 + chunk);
    int64_t f0 = 0;
    for (; f0 + 32 <= s.F; f0 += 32) GradColumns<2>(s, x, dy, dw, offsets.data(), f0, c0, c1);
    if (f0 + 16 <= s.F) GradColumns<1>(s, x, dy, dw, offsets.data(), f0, c0, c1), f0 += 16;
    if (f0 < s.F) GradTail(s, x, dy, dw, offsets.data(), f0, c0, c1);
  }
}

// The gradient of a fused conv -> relu -> k x k max-pool block for n images, written out:
// dz [n, Ho, Wo, F] is d_pooled [n, Hp, Wp, F] at each window's first maximum (index, as
// BiasReluPool writes it) and zero elsewhere, including rows and columns no window covers.
void Unpool(const float* d_pooled, const int8_t* index, int64_t n, int64_t Hp, int64_t Wp,
            int64_t Ho, int64_t Wo, int64_t F, int64_t k, float* dz) {
  const std::vector<int64_t> offset = WindowOffsets(k, Wo, F);
  for (int64_t b = 0; b < n; ++b) {
    // Rows and columns that no window covers; every covered element is written below.
    for (int64_t oy = 0; oy < Ho; ++oy) {
      float* row = dz + (b * Ho + oy) * Wo * F;
      std::fill(oy < Hp * k ? row + Wp * k * F : row, row + Wo * F, 0.0f);
    }
    for (int64_t p = 0; p < Hp; ++p)
      for (int64_t q = 0; q < Wp; ++q) {
        const int64_t at = ((b * Hp + p) * Wp + q) * F;
        float* corner = dz + ((b * Ho + p * k) * Wo + q * k) * F;
        int64_t f = 0;
        for (; f + kLanes <= F; f += kLanes) {
          const VecI argmax = LoadBytes(index + at + f);
          const Vec g = Load(d_pooled + at + f);
          for (int64_t d = 0; d < k * k; ++d)
            Store(corner + offset[d] + f, argmax == static_cast<int32_t>(d) ? g : Vec{} + 0.0f);
        }
        for (; f < F; ++f)
          for (int64_t d = 0; d < k * k; ++d)
            corner[offset[d] + f] = index[at + f] == d ? d_pooled[at + f] : 0.0f;
      }
  }
}

// Parts to split `work` multiply-adds into: enough for every thread of XLA's pool and the
// caller, and then some for balance, but none with less than ~1M of them.
int64_t Parts(ffi::ThreadPool& pool, int64_t work, int64_t at_most) {
  const int64_t useful = std::max<int64_t>(1, work >> 20);
  return std::max<int64_t>(1, std::min({2 * (pool.num_threads() + 1), useful, at_most}));
}

ffi::Error ReadShape(ffi::Buffer<ffi::F32>& x, ffi::Buffer<ffi::F32>& w, Padded* g) {
  auto xd = x.dimensions();
  auto wd = w.dimensions();
  if (xd.size() != 4 || wd.size() != 4)
    return ffi::Error::InvalidArgument("x must be [B, H, W, C] and w [KH, KW, C, F]");
  g->s = Shape{xd[0], xd[1], xd[2], xd[3], wd[0], wd[1], wd[3]};
  if (g->PT < 0 || g->PB < 0 || g->PL < 0 || g->PR < 0)
    return ffi::Error::InvalidArgument("padding must not be negative");
  if (wd[2] != g->s.C || g->Ho() < 1 || g->Wo() < 1)
    return ffi::Error::InvalidArgument("w's input channels must match x's, and fit inside x");
  return ffi::Error::Success();
}

ffi::Error Conv(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F32> w,
                ffi::ResultBuffer<ffi::F32> y, int64_t pad_top, int64_t pad_bottom,
                int64_t pad_left, int64_t pad_right) {
  Padded g{Shape{}, pad_top, pad_bottom, pad_left, pad_right};
  if (auto error = ReadShape(x, w, &g); error.failure()) return error;
  const std::vector<PixelClass> classes = PixelClasses(g);
  const int64_t pixels = g.s.B * g.Ho() * g.Wo();
  const int64_t parts = Parts(pool, pixels * g.s.K() * g.s.F, pixels / 12);
  ParallelParts(pool, parts, [&](int64_t part) {
    ConvRange(g, classes, x.typed_data(), w.typed_data(), y->typed_data(),
              pixels * part / parts, pixels * (part + 1) / parts);
  });
  return ffi::Error::Success();
}

// The kernel gradient dw [KH, KW, C, F] (s): add_images(dw_part, b0, b1) adds images
// [b0, b1)'s share to dw_part, one per part of the batch.
template <typename AddImages>
void KernelGrad(ffi::ThreadPool& pool, const Shape& s, const AddImages& add_images, float* dw) {
  const int64_t size = s.K() * s.F;
  const int64_t parts = Parts(pool, s.B * s.Ho() * s.Wo() * size, s.B);
  // One partial gradient per part (each over its own images), summed below.
  std::vector<float> partial(static_cast<size_t>(parts - 1) * size, 0.0f);
  std::fill(dw, dw + size, 0.0f);
  ParallelParts(pool, parts, [&](int64_t part) {
    float* mine = part == parts - 1 ? dw : partial.data() + part * size;
    add_images(mine, s.B * part / parts, s.B * (part + 1) / parts);
  });
  for (int64_t t = 0; t + 1 < parts; ++t)
    for (int64_t i = 0; i < size; ++i) dw[i] += partial[t * size + i];
}

ffi::Error ConvKernelGrad(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> x,
                          ffi::Buffer<ffi::F32> dy, ffi::ResultBuffer<ffi::F32> dw) {
  auto xd = x.dimensions();
  auto gd = dy.dimensions();
  auto wd = dw->dimensions();
  if (xd.size() != 4 || gd.size() != 4 || wd.size() != 4 || gd[0] != xd[0] ||
      wd[0] != xd[1] - gd[1] + 1 || wd[1] != xd[2] - gd[2] + 1 || wd[2] != xd[3] ||
      wd[3] != gd[3])
    return ffi::Error::InvalidArgument(
        "x [B, H, W, C], dy [B, H-KH+1, W-KW+1, F] and dw [KH, KW, C, F] do not match");
  const Shape s{xd[0], xd[1], xd[2], xd[3], wd[0], wd[1], wd[3]};
  const std::vector<int64_t> offsets = ProductOffsets(s);
  KernelGrad(pool, s, [&](float* dw_part, int64_t b0, int64_t b1) {
    GradImages(s, x.typed_data(), dy.typed_data(), dw_part, offsets, b0, b1);
  }, dw->typed_data());
  return ffi::Error::Success();
}

// The kernel gradient of a fused conv -> relu -> max-pool block, from the pooled gradient
// and the forward pass's index: no full-size gradient is written or read.
ffi::Error ConvPoolKernelGrad(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> x,
                              ffi::Buffer<ffi::F32> d_pooled, ffi::Buffer<ffi::S8> index,
                              ffi::ResultBuffer<ffi::F32> dw, int64_t window) {
  auto xd = x.dimensions();
  auto pd = d_pooled.dimensions();
  auto wd = dw->dimensions();
  if (xd.size() != 4 || pd.size() != 4 || wd.size() != 4 || window < 1 || window > 11)
    return ffi::Error::InvalidArgument("x, d_pooled and dw must be 4-D, the window 1 to 11");
  const Shape s{xd[0], xd[1], xd[2], xd[3], wd[0], wd[1], wd[3]};
  if (s.Ho() < 1 || s.Wo() < 1 || wd[2] != s.C || pd[0] != s.B || pd[1] != s.Ho() / window ||
      pd[2] != s.Wo() / window || pd[3] != s.F ||
      index.element_count() != d_pooled.element_count())
    return ffi::Error::InvalidArgument(
        "x [B, H, W, C], dw [KH, KW, C, F], d_pooled and index [B, Ho / k, Wo / k, F] do not "
        "match");
  const std::vector<int64_t> offsets = ProductOffsets(s);
  const int64_t Hp = pd[1], Wp = pd[2], k = window, in_size = s.H * s.W * s.C;
  // GradImages's chunk of images: their gradient written out in cache, not in memory.
  const int64_t chunk = GradChunk(s);
  KernelGrad(pool, s, [&](float* dw_part, int64_t b0, int64_t b1) {
    std::vector<float> dz(static_cast<size_t>(chunk * s.Ho() * s.Wo() * s.F));
    for (int64_t c0 = b0; c0 < b1; c0 += chunk) {
      const int64_t n = std::min(b1, c0 + chunk) - c0;
      const int64_t at = c0 * Hp * Wp * s.F;
      Unpool(d_pooled.typed_data() + at, index.typed_data() + at, n, Hp, Wp, s.Ho(), s.Wo(), s.F,
             k, dz.data());
      GradImages(s, x.typed_data() + c0 * in_size, dz.data(), dw_part, offsets, 0, n);
    }
  }, dw->typed_data());
  return ffi::Error::Success();
}

// One window's bias, relu and max pool for channels [f, f + 16): see BiasReluPool.
inline void PoolLanes(const float* corner, const float* bias, const std::vector<int64_t>& offset,
                      int64_t f, float* out, int8_t* arg) {
  const Vec b = Load(bias + f);
  Vec best = Load(corner + f) + b, at = Vec{} + 0.0f;
  for (size_t d = 1; d < offset.size(); ++d) {
    const Vec v = Load(corner + offset[d] + f) + b;
    // Strictly greater: ties keep the first maximum. A NaN replaces any number and is
    // never replaced (v > NaN is false).
    const VecI taken = (v > best) | (v != v);
    best = taken ? v : best;
    at = taken ? Vec{} + static_cast<float>(d) : at;
  }
  const VecI positive = best > 0.0f;
  Store(out + f, positive | (best != best) ? best : Vec{} + 0.0f);
  const VecB index = __builtin_convertvector(positive ? __builtin_convertvector(at, VecI)
                                                      : VecI{} - 1, VecB);
  __builtin_memcpy(arg + f, &index, sizeof(index));
}

// One image's bias, relu and k x k max pool, from its convolution z [Ho, Wo, F] (of which
// the first Hp * k rows and Wp * k columns are read): pooled[p, q, f] = max(0, the window's
// maximum of z + bias), and index[p, q, f] the window position (row-major) of the first
// maximum, or -1 where no gradient flows back (the maximum is not positive, as in relu's
// derivative, or not a number). A NaN anywhere in a window makes its output NaN.
void BiasReluPool(const float* z, const float* bias, int64_t Wo, int64_t F, int64_t Hp,
                  int64_t Wp, int64_t k, const std::vector<int64_t>& offset, float* pooled,
                  int8_t* index) {
  for (int64_t p = 0; p < Hp; ++p)
    for (int64_t q = 0; q < Wp; ++q) {
      float* out = pooled + (p * Wp + q) * F;
      int8_t* arg = index + (p * Wp + q) * F;
      const float* corner = z + (p * k * Wo + q * k) * F;
      int64_t f = 0;
      for (; f + kLanes <= F; f += kLanes) PoolLanes(corner, bias, offset, f, out, arg);
      for (; f < F; ++f) {  // Channels past the last multiple of 16, as PoolLanes does.
        float best = corner[f] + bias[f];
        int8_t at = 0;
        for (int64_t d = 1; d < k * k; ++d) {
          const float v = corner[offset[d] + f] + bias[f];
          if (v > best || v != v) best = v, at = static_cast<int8_t>(d);
        }
        out[f] = best > 0.0f || best != best ? best : 0.0f;
        arg[f] = best > 0.0f ? at : int8_t{-1};
      }
    }
}

// The seed CNN's conv -> bias -> relu -> max-pool block in one pass per image: the
// convolution's output (in cache, one image at a time) is never written to memory, and
// rows and columns that no pooling window covers are not computed. Only the pooled values
// and, for the backward pass, each window's index of its maximum (one byte) are written.
ffi::Error ConvReluPool(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F32> w,
                        ffi::Buffer<ffi::F32> bias, ffi::ResultBuffer<ffi::F32> pooled,
                        ffi::ResultBuffer<ffi::S8> index, int64_t pad_top, int64_t pad_bottom,
                        int64_t pad_left, int64_t pad_right, int64_t window) {
  Padded g{Shape{}, pad_top, pad_bottom, pad_left, pad_right};
  if (auto error = ReadShape(x, w, &g); error.failure()) return error;
  const Shape& s = g.s;
  const int64_t k = window, Hp = g.Ho() / std::max<int64_t>(k, 1),
                Wp = g.Wo() / std::max<int64_t>(k, 1);
  auto pd = pooled->dimensions();
  if (k < 1 || k > 11 || Hp < 1 || Wp < 1)
    return ffi::Error::InvalidArgument("the pooling window must be 1 to 11 and fit the output");
  if (bias.element_count() != s.F || pd.size() != 4 || pd[0] != s.B || pd[1] != Hp ||
      pd[2] != Wp || pd[3] != s.F || index->element_count() != pooled->element_count())
    return ffi::Error::InvalidArgument("bias must be [F], pooled and index [B, Ho/k, Wo/k, F]");
  Padded image = g;
  image.s.B = 1;
  const std::vector<PixelClass> classes = PixelClasses(image, Hp * k, Wp * k);
  const int64_t pixels = Hp * k * Wp * k;  // Per image.
  const int64_t in_size = s.H * s.W * s.C, out_size = Hp * Wp * s.F;
  const std::vector<int64_t> offset = WindowOffsets(k, g.Wo(), s.F);
  const int64_t parts = Parts(pool, s.B * pixels * s.K() * s.F, s.B);
  ParallelParts(pool, parts, [&](int64_t part) {
    std::vector<float> z(static_cast<size_t>(g.Ho() * g.Wo() * s.F));
    for (int64_t b = s.B * part / parts; b < s.B * (part + 1) / parts; ++b) {
      ConvRange(image, classes, x.typed_data() + b * in_size, w.typed_data(), z.data(), 0,
                pixels);
      BiasReluPool(z.data(), bias.typed_data(), g.Wo(), s.F, Hp, Wp, k, offset,
                   pooled->typed_data() + b * out_size, index->typed_data() + b * out_size);
    }
  });
  return ffi::Error::Success();
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(JaxdlConv, Conv,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()         // XLA's intra-op threads
                                  .Arg<ffi::Buffer<ffi::F32>>()   // x [B, H, W, C]
                                  .Arg<ffi::Buffer<ffi::F32>>()   // w [KH, KW, C, F]
                                  .Ret<ffi::Buffer<ffi::F32>>()   // y [B, Ho, Wo, F]
                                  .Attr<int64_t>("pad_top")       // Zeros around x, never
                                  .Attr<int64_t>("pad_bottom")    // written: Ho = H + top +
                                  .Attr<int64_t>("pad_left")      // bottom - KH + 1, and Wo
                                  .Attr<int64_t>("pad_right"));   // alike.

XLA_FFI_DEFINE_HANDLER_SYMBOL(JaxdlConvKernelGrad, ConvKernelGrad,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()         // XLA's intra-op threads
                                  .Arg<ffi::Buffer<ffi::F32>>()   // x [B, H, W, C]
                                  .Arg<ffi::Buffer<ffi::F32>>()   // dy [B, Ho, Wo, F]
                                  .Ret<ffi::Buffer<ffi::F32>>()); // dw [KH, KW, C, F]

XLA_FFI_DEFINE_HANDLER_SYMBOL(JaxdlConvReluPool, ConvReluPool,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()         // XLA's intra-op threads
                                  .Arg<ffi::Buffer<ffi::F32>>()   // x [B, H, W, C]
                                  .Arg<ffi::Buffer<ffi::F32>>()   // w [KH, KW, C, F]
                                  .Arg<ffi::Buffer<ffi::F32>>()   // bias [F]
                                  .Ret<ffi::Buffer<ffi::F32>>()   // pooled [B, Hp, Wp, F]
                                  .Ret<ffi::Buffer<ffi::S8>>()    // index [B, Hp, Wp, F]
                                  .Attr<int64_t>("pad_top")       // As JaxdlConv's.
                                  .Attr<int64_t>("pad_bottom")
                                  .Attr<int64_t>("pad_left")
                                  .Attr<int64_t>("pad_right")
                                  .Attr<int64_t>("window"));      // k: Hp = Ho / k, Wp alike.

XLA_FFI_DEFINE_HANDLER_SYMBOL(JaxdlConvPoolKernelGrad, ConvPoolKernelGrad,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()         // XLA's intra-op threads
                                  .Arg<ffi::Buffer<ffi::F32>>()   // x [B, H, W, C]
                                  .Arg<ffi::Buffer<ffi::F32>>()   // d_pooled [B, Hp, Wp, F]
                                  .Arg<ffi::Buffer<ffi::S8>>()    // index [B, Hp, Wp, F]
                                  .Ret<ffi::Buffer<ffi::F32>>()   // dw [KH, KW, C, F]
                                  .Attr<int64_t>("window"));      // k
