#include "featpool/file_identity.hpp"

#include <sys/stat.h>

namespace featpool {

std::optional<file_identity> identity_of(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return std::nullopt;
  return file_identity{st.st_dev, st.st_ino};
}

}  // namespace featpool
