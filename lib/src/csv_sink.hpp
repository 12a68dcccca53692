#pragma once
// CSV and TSV outputs: a header row `source,f0,f1,…`, then one row per
// sample, labelled `FILE:NAME#n`, holding that sample's values.

#include <memory>
#include <string>

#include "featpool/sink.hpp"

namespace featpool {

// A sink writing rows separated by `separator` (',' or '\t'). Every tensor
// written must be (N, K) (N rows) or (K) (one row), with the same K: the
// plan flattens them and checks K before any work. The name a tensor is
// written under labels its rows.
std::unique_ptr<tensor_sink> create_csv_sink(char separator, const std::string& target, bool sync,
                                             on_existing existing);

}  // namespace featpool
