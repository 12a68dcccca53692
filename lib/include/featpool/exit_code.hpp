#pragma once
// The exit codes scripts depend on (SPEC: "Errors and exit codes").

namespace featpool::exit_code {

inline constexpr int ok = 0;
inline constexpr int failure = 1;
inline constexpr int usage = 2;
inline constexpr int interrupted = 130;
inline constexpr int terminated = 143;

}  // namespace featpool::exit_code
