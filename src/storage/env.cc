#include "storage/env.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <thread>

#include "storage/file_util.h"

namespace raftkv::storage {
namespace {

class PosixFile : public WritableFile {
 public:
  PosixFile(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  ~PosixFile() override { ::close(fd_); }

  absl::Status WriteAt(uint64_t offset, std::string_view data) override {
    while (!data.empty()) {
      const ssize_t written = ::pwrite(fd_, data.data(), data.size(), static_cast<off_t>(offset));
      if (written < 0) {
        if (errno == EINTR) continue;
        return ErrnoError("cannot write", path_);
      }
      data.remove_prefix(static_cast<size_t>(written));
      offset += static_cast<uint64_t>(written);
    }
    return absl::OkStatus();
  }

  absl::Status Truncate(uint64_t size) override {
    if (::ftruncate(fd_, static_cast<off_t>(size)) != 0)
      return ErrnoError("cannot truncate", path_);
    return absl::OkStatus();
  }

  absl::Status Allocate(uint64_t offset, uint64_t length) override {
    int result;
    do {
      result = ::fallocate(fd_, 0, static_cast<off_t>(offset), static_cast<off_t>(length));
    } while (result != 0 && errno == EINTR);
    if (result == 0) return absl::OkStatus();
    if (errno == EOPNOTSUPP || errno == ENOSYS) {
      return absl::UnimplementedError("the file system of " + path_ + " cannot preallocate");
    }
    return ErrnoError("cannot preallocate", path_);
  }

  absl::Status Sync() override {
    if (::fdatasync(fd_) != 0) return ErrnoError("cannot fsync", path_);
    return absl::OkStatus();
  }
  void Writeback(uint64_t wait_offset, uint64_t offset, uint64_t length) override {
    if (offset > wait_offset) {
      (void)::sync_file_range(
          fd_, static_cast<off64_t>(wait_offset), static_cast<off64_t>(offset - wait_offset),
          SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER);
    }
    (void)::sync_file_range(fd_, static_cast<off64_t>(offset), static_cast<off64_t>(length),
                            SYNC_FILE_RANGE_WRITE);
  }

 private:
  int fd_;
  std::string path_;
};

class Posix : public Env {
 public:
  void CloseInBackground(std::unique_ptr<WritableFile> file) override {
    // A thread of its own, which only closes one descriptor and ends; rare (once a snapshot).
    std::thread([file = std::move(file)]() mutable { file.reset(); }).detach();
  }
  absl::StatusOr<std::string> ReadFile(const std::string& path) override {
    return ReadWholeFile(path);
  }
  absl::StatusOr<std::string> ReadAt(const std::string& path, uint64_t offset,
                                     uint64_t length) override {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      if (errno == ENOENT) return absl::NotFoundError("cannot open " + path + ": no such file");
      return ErrnoError("cannot open", path);
    }
    std::string out(length, '\0');
    size_t got = 0;
    while (got < length) {
      const ssize_t n =
          ::pread(fd, out.data() + got, length - got, static_cast<off_t>(offset + got));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        absl::Status status = ErrnoError("cannot read", path);
        ::close(fd);
        return status;
      }
      if (n == 0) break;
      got += static_cast<size_t>(n);
    }
    ::close(fd);
    out.resize(got);
    return out;
  }
  absl::StatusOr<uint64_t> FileSize(const std::string& path) override {
    struct stat st;
    if (::stat(path.c_str(), &st) != 0) {
      if (errno == ENOENT) return absl::NotFoundError("cannot open " + path + ": no such file");
      return ErrnoError("cannot stat", path);
    }
    return static_cast<uint64_t>(st.st_size);
  }
  absl::Status DeleteFile(const std::string& path) override {
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) return ErrnoError("cannot delete", path);
    return absl::OkStatus();
  }
  absl::Status CreateDir(const std::string& path) override { return CreateDirectories(path); }
  absl::StatusOr<std::unique_ptr<WritableFile>> OpenWritable(const std::string& path,
                                                             bool truncate) override {
    const int fd =
        ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | (truncate ? O_TRUNC : 0), 0644);
    if (fd < 0) return ErrnoError("cannot open", path);
    return std::make_unique<PosixFile>(fd, path);
  }
  absl::Status Rename(const std::string& from, const std::string& to) override {
    if (::rename(from.c_str(), to.c_str()) != 0) return ErrnoError("cannot rename over", to);
    return absl::OkStatus();
  }
  absl::Status SyncDir(const std::string& dir) override { return SyncDirectory(dir); }
  absl::StatusOr<std::unique_ptr<DirLock>> LockDir(const std::string& dir) override;
};

// flock(2) on `dir`/LOCK: the kernel drops it when the descriptor closes or the process dies, and
// it holds across paths that name the same file (a symlink to another node's directory). The
// file's text, the holder's pid, is only for the message a second process gets.
class PosixDirLock : public DirLock {
 public:
  explicit PosixDirLock(int fd) : fd_(fd) {}
  ~PosixDirLock() override { ::close(fd_); }

 private:
  int fd_;
};

absl::StatusOr<std::unique_ptr<DirLock>> Posix::LockDir(const std::string& dir) {
  if (absl::Status status = CreateDirectories(dir); !status.ok()) return status;
  const std::string path = dir + "/LOCK";
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoError("cannot open", path);
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int error = errno;
    char holder[32] = {};
    const ssize_t n = ::pread(fd, holder, sizeof holder - 1, 0);
    ::close(fd);
    if (error != EWOULDBLOCK) {
      errno = error;
      return ErrnoError("cannot lock", path);
    }
    // The holder writes its pid just after taking the lock: it may not be there yet.
    std::string pid(holder, n > 0 ? static_cast<size_t>(n) : 0);
    pid = pid.substr(0, pid.find('\n'));
    if (pid.empty() || pid.find_first_not_of("0123456789") != std::string::npos) pid = "unknown";
    const std::string who = pid == std::to_string(::getpid()) ? "this process" : "another process";
    return absl::FailedPreconditionError(
        dir + " is in use by " + who + " (pid " + pid + ", holding " + path +
        "): stop it first, or give this node a data directory of its own");
  }
  const std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd, 0) != 0 ||
      ::pwrite(fd, pid.data(), pid.size(), 0) != static_cast<ssize_t>(pid.size())) {
    absl::Status status = ErrnoError("cannot write", path);  // before close() changes errno
    ::close(fd);
    return status;
  }
  return std::make_unique<PosixDirLock>(fd);
}

}  // namespace

Env* PosixEnv() {
  static Posix* const env = new Posix();
  return env;
}

absl::Status ReplaceFileAtomically(Env* env, const std::string& dir, const std::string& name,
                                   std::string_view contents) {
  const std::string path = dir + "/" + name;
  const std::string temp = path + ".tmp";
  {
    absl::StatusOr<std::unique_ptr<WritableFile>> file = env->OpenWritable(temp, /*truncate=*/true);
    if (!file.ok()) return file.status();
    if (absl::Status s = (*file)->WriteAt(0, contents); !s.ok()) return s;
    if (absl::Status s = (*file)->Sync(); !s.ok()) return s;
  }
  if (absl::Status s = env->Rename(temp, path); !s.ok()) return s;
  return env->SyncDir(dir);
}

}  // namespace raftkv::storage
