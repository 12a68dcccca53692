#include "temporary_file.hpp"

#include <fcntl.h>
#include <sys/random.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "featpool/error.hpp"

namespace featpool {
namespace fs = std::filesystem;
namespace {

std::string reason_of(int error_number) { return std::strerror(error_number); }

void sync_folder(const fs::path& folder, const std::string& target) {
  int fd = ::open(folder.empty() ? "." : folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) throw error(target, "cannot sync its folder: " + reason_of(errno));
  int result = ::fsync(fd);
  int saved = errno;
  ::close(fd);
  if (result != 0) throw error(target, "cannot sync its folder: " + reason_of(saved));
}

// Random names collide about never; a few retries cover the rest.
constexpr int kNameAttempts = 16;

// Six random letters and digits, as mkstemp uses.
constexpr std::size_t kSuffixBytes = 6;

std::string random_suffix(const std::string& target) {
  static constexpr std::string_view kAlphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  std::array<unsigned char, kSuffixBytes> bytes{};
  ssize_t got;
  do {
    got = ::getrandom(bytes.data(), bytes.size(), 0);
  } while (got < 0 && errno == EINTR);
  if (got != static_cast<ssize_t>(bytes.size())) {
    throw error(target, "cannot create the output: no random bytes for its temporary name");
  }
  std::string suffix;
  for (auto b : bytes) suffix += kAlphabet[b % kAlphabet.size()];
  return suffix;
}

// ".<target name>.featpool-tmp-": the target name is cut, at a UTF-8
// character boundary, so that the whole temporary name stays within
// NAME_MAX; any target name the file system takes can then be written.
std::string temporary_prefix(const std::string& target_name) {
  constexpr std::size_t kRoom = NAME_MAX - 1 - kTemporaryMarker.size() - kSuffixBytes;
  std::string kept = target_name.substr(0, kRoom);
  auto is_continuation = [](char c) { return (static_cast<unsigned char>(c) & 0xC0) == 0x80; };
  while (!kept.empty() && kept.size() < target_name.size() &&
         is_continuation(target_name[kept.size()])) {
    kept.pop_back();
  }
  // Built piece by piece: g++ 12 warns falsely on "." + string here.
  std::string prefix(".");
  prefix += kept;
  prefix += kTemporaryMarker;
  return prefix;
}

// rename() that fails with EEXIST rather than replace `to`. File systems
// without RENAME_NOREPLACE (NFS) get link() and unlink(), as atomic; those
// without hard links either, a plain rename.
bool rename_without_replacing(const std::string& from, const std::string& to) {
  if (::renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), RENAME_NOREPLACE) == 0) {
    return true;
  }
  if (errno != EINVAL && errno != ENOSYS) return false;
  if (::link(from.c_str(), to.c_str()) == 0) {
    ::unlink(from.c_str());
    return true;
  }
  if (errno != EPERM && errno != ENOTSUP) return false;
  return ::rename(from.c_str(), to.c_str()) == 0;
}

}  // namespace

void write_all(int fd, std::string_view bytes, const std::string& target) {
  while (!bytes.empty()) {
    ssize_t done = ::write(fd, bytes.data(), bytes.size());
    if (done < 0) {
      if (errno == EINTR) continue;
      throw error(target, "cannot write: " + reason_of(errno));
    }
    bytes.remove_prefix(static_cast<std::size_t>(done));
  }
}

temporary_file::temporary_file(std::string target, on_existing existing)
    : target_(std::move(target)), existing_(existing) {
  fs::path where(target_);
  // Refused now, not when the finished file is renamed onto it.
  if (where.filename().string().size() > NAME_MAX) {
    throw error(target_, "cannot create the output: " + reason_of(ENAMETOOLONG));
  }
  std::string prefix = temporary_prefix(where.filename().string());
  // Created 0666 so the kernel applies the umask, as for any other file
  // this process creates (mkstemp's 0600 would need a umask lookup that
  // is not thread-safe).
  for (int attempt = 0; attempt < kNameAttempts; ++attempt) {
    std::string candidate = (where.parent_path() / (prefix + random_suffix(target_))).string();
    fd_ = ::open(candidate.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd_ >= 0) {
      path_ = std::move(candidate);
      return;
    }
    if (errno != EEXIST) break;
  }
  throw error(target_, "cannot create the output: " + reason_of(errno));
}

temporary_file::~temporary_file() {
  if (fd_ >= 0) ::close(fd_);
  if (!published_) ::unlink(path_.c_str());
}

void temporary_file::close() {
  if (fd_ >= 0 && ::close(fd_) != 0) throw error(target_, "cannot write: " + reason_of(errno));
  fd_ = -1;
}

void temporary_file::finish(bool sync) {
  if (sync) {
    int fd = fd_ >= 0 ? fd_ : ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0 || ::fsync(fd) != 0) throw error(target_, "cannot sync: " + reason_of(errno));
    if (fd != fd_) ::close(fd);
  }
  close();
}

void temporary_file::publish(bool sync) {
  bool renamed = existing_ == on_existing::refuse ? rename_without_replacing(path_, target_)
                                                  : ::rename(path_.c_str(), target_.c_str()) == 0;
  if (!renamed && errno == EEXIST) {
    throw error(target_,
                "exists now (another process wrote it meanwhile); pass --force to "
                "overwrite it");
  }
  if (!renamed) {
    throw error(target_, "cannot rename the finished output into place: " + reason_of(errno));
  }
  published_ = true;
  if (sync) sync_folder(fs::path(target_).parent_path(), target_);
}

}  // namespace featpool
