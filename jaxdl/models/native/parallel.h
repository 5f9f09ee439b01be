// Work split over XLA's own intra-op threads, shared by jaxdl's CPU kernels.
#ifndef JAXDL_NATIVE_PARALLEL_H_
#define JAXDL_NATIVE_PARALLEL_H_

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <memory>
#include <thread>

#include "xla/ffi/api/ffi.h"

namespace jaxdl {

// Runs body(part) for every part in [0, parts): on the calling thread and on XLA's own
// intra-op threads, so a kernel shares the cores with the other operations XLA runs at
// the same time instead of starting threads of its own (which measured slower: XLA runs
// independent operations, such as a convolution's two gradients, side by side, and its
// idle threads spin for a while before they sleep).
//
// Whoever is free takes the next part. The caller takes parts too and then waits only for
// parts that other threads have started, so it never waits on a task that is still queued
// behind busy threads; a task that starts after every part is taken returns at once. What
// a part computes must depend on its number only, not on the thread that runs it.
template <typename Body>
void ParallelParts(xla::ffi::ThreadPool& pool, int64_t parts, const Body& body) {
  struct Progress {
    std::atomic<int64_t> next{0}, done{0};
  };
  auto progress = std::make_shared<Progress>();
  auto work = [progress, parts, &body] {
    for (int64_t part; (part = progress->next.fetch_add(1)) < parts;) {
      body(part);
      progress->done.fetch_add(1, std::memory_order_release);
    }
  };
  const int64_t helpers = std::min<int64_t>(pool.num_threads(), parts - 1);
  for (int64_t i = 0; i < helpers; ++i) pool.Schedule([work] { work(); });
  work();
  while (progress->done.load(std::memory_order_acquire) < parts) std::this_thread::yield();
}

}  // namespace jaxdl

#endif  // JAXDL_NATIVE_PARALLEL_H_
