#pragma once
// Which file a path leads to, following symlinks: its device and inode, so
// that symlinks and hard links to one file count as that file. An output
// must never replace one of the inputs.

#include <sys/types.h>

#include <compare>
#include <optional>
#include <string>

namespace featpool {

struct file_identity {
  dev_t device;
  ino_t inode;
  auto operator<=>(const file_identity&) const = default;
};

// Empty when nothing is there (or it cannot be looked at).
std::optional<file_identity> identity_of(const std::string& path);

}  // namespace featpool
