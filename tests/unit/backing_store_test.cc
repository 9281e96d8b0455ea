// BackingStore: one resolution of the path, refusal of anything but a regular file or a block
// device before it is opened, and errors that name the path and the errno text.
#include "backing_store.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <system_error>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "device_spec.h"

namespace {

using testing::AllOf;
using testing::HasSubstr;
using testing::Property;
using ublkd::BackingStore;
using ublkd::SpecError;

// A scratch directory, removed with what the test left in it.
class TempDir {
 public:
  TempDir() : path_("/tmp/ublkd-backing-test-XXXXXX") {
    if (::mkdtemp(path_.data()) == nullptr) throw std::system_error(errno, std::generic_category(), "mkdtemp");
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir() { std::filesystem::remove_all(path_); }
  const std::string& path() const { return path_; }
  std::string file(const std::string& name, const std::string& contents = "data") const {
    const std::string path = path_ + "/" + name;
    std::ofstream(path) << contents;
    return path;
  }

 private:
  std::string path_;
};

auto Rejects(const std::string& reasonPart) {
  return AllOf(Property("field", &SpecError::field, "/path"),
               Property("reason", &SpecError::reason, HasSubstr(reasonPart)));
}

SpecError rejectionOf(const std::string& path, bool readOnly = false) {
  try {
    (void)BackingStore::open(path, readOnly);
  } catch (const SpecError& e) {
    return e;
  }
  ADD_FAILURE() << "backing accepted: " << path;
  return SpecError("<accepted>", "<accepted>");
}

TEST(BackingStore, OpensARegularFileForReadingAndWriting) {
  const TempDir dir;
  const std::string file = dir.file("disk.img");
  const BackingStore store = BackingStore::open(file, false);
  EXPECT_FALSE(store.isBlockDevice());
  EXPECT_EQ(store.resolvedPath(), file);
  EXPECT_EQ(::write(store.fd(), "x", 1), 1) << "opened for writing";
  struct stat status {};
  ASSERT_EQ(::stat(file.c_str(), &status), 0);
  EXPECT_EQ(store.identity(), (ublkd::FileIdentity{.device = status.st_dev, .inode = status.st_ino}));
}

TEST(BackingStore, ReadOnlyOpensForReadingOnly) {
  const TempDir dir;
  const BackingStore store = BackingStore::open(dir.file("disk.img"), true);
  EXPECT_EQ(::write(store.fd(), "x", 1), -1);
  EXPECT_EQ(errno, EBADF);
}

TEST(BackingStore, FollowsASymlinkOnceAndShowsWhatItNamed) {
  const TempDir dir;
  const std::string file = dir.file("disk.img");
  const std::string link = dir.path() + "/link";
  ASSERT_EQ(::symlink(file.c_str(), link.c_str()), 0);
  const BackingStore store = BackingStore::open(link, false);
  EXPECT_EQ(store.path(), link);
  EXPECT_EQ(store.resolvedPath(), file);
  // Swapping the link afterwards changes nothing about what the open store serves.
  const std::string other = dir.file("other.img", "other");
  ASSERT_EQ(::unlink(link.c_str()), 0);
  ASSERT_EQ(::symlink(other.c_str(), link.c_str()), 0);
  char byte = 0;
  ASSERT_EQ(::pread(store.fd(), &byte, 1, 0), 1);
  EXPECT_EQ(byte, 'd');
}

TEST(BackingStore, RejectsAMissingFileWithTheErrnoText) {
  EXPECT_THAT(rejectionOf("/nonexistent/ublkd-test/disk0.img"),
              Rejects("cannot open /nonexistent/ublkd-test/disk0.img: No such file or directory"));
}

TEST(BackingStore, RejectsADirectory) {
  const TempDir dir;
  EXPECT_THAT(rejectionOf(dir.path(), true),
              Rejects(dir.path() + " is a directory; the backing store must be a regular file or a block device"));
}

TEST(BackingStore, RejectsACharacterDevice) {
  EXPECT_THAT(rejectionOf("/dev/null"), Rejects("/dev/null is a character device"));
}

// A FIFO without a writer would block a real open forever; it is refused at once, unopened.
TEST(BackingStore, RejectsAFifoWithoutOpeningIt) {
  const TempDir dir;
  const std::string fifo = dir.path() + "/fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  const auto start = std::chrono::steady_clock::now();
  EXPECT_THAT(rejectionOf(fifo, true), Rejects(fifo + " is a FIFO"));
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(1));
}

// sysctl files apply their mode bits even to root, unlike ordinary files (and unlike /proc/version,
// which root can open for writing), so these stay unwritable or unreadable when tests run as root.
TEST(BackingStore, RejectsAnUnwritableFileUnlessReadOnly) {
  const std::string readOnlyFile = "/proc/sys/kernel/osrelease";
  EXPECT_THAT(rejectionOf(readOnlyFile), Rejects("cannot open /proc/sys/kernel/osrelease for reading and writing: "));
  EXPECT_THAT(rejectionOf(readOnlyFile).reason(), HasSubstr("set read_only"));
  EXPECT_NO_THROW((void)BackingStore::open(readOnlyFile, true));
}

TEST(BackingStore, RejectsAnUnreadableFile) {
  const std::string writeOnlyFile = "/proc/sys/vm/compact_memory";
  if (::access(writeOnlyFile.c_str(), F_OK) != 0) GTEST_SKIP() << writeOnlyFile << " needs CONFIG_COMPACTION";
  EXPECT_THAT(rejectionOf(writeOnlyFile, true),
              Rejects("cannot open /proc/sys/vm/compact_memory for reading: Permission denied"));
}

TEST(BackingStore, FromFdChecksTheTypeAgain) {
  ublk::UniqueFd fd(::open("/dev/null", O_RDWR | O_CLOEXEC));
  ASSERT_TRUE(fd);
  EXPECT_THAT([&] { (void)BackingStore::fromFd(std::move(fd), "/dev/null"); },
              testing::Throws<SpecError>(Rejects("/dev/null is a character device")));
}

}  // namespace
