#pragma once
// Runs a plan: pools every runnable tensor on -j workers and writes the
// outputs, publishing them and settling the report in input order, so
// results, outputs and report are the same for every -j.

#include <functional>
#include <memory>
#include <string>

#include "featpool/batch.hpp"
#include "featpool/plan.hpp"
#include "featpool/progress.hpp"

namespace featpool {

class executor {
 public:
  // `say` prints one stderr line (a failure) as it happens, in input order;
  // `progress` may be null.
  executor(plan& work, const pool_options& options, std::function<void(const std::string&)> say,
           progress_line* progress);
  ~executor();

  // Returns false when it stopped at a failure (without --keep-going).
  // Throws `interrupted` on SIGINT/SIGTERM, unfinished outputs removed.
  bool run();

  // Tensors planned but never written, because the run stopped early, are
  // reported as skipped with `why`.
  void mark_unwritten(const std::string& why);

  struct state;

 private:
  std::unique_ptr<state> state_;
};

}  // namespace featpool
