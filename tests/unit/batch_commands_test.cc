// BATCH_IO's commands as BatchCommands builds them: the PREP and COMMIT element arrays (8 bytes
// per tag, 16 with the tag's buffer in copy mode), the FETCH's multishot buffer select, and a
// COMMIT the kernel took only part of. A real io_uring carries the FETCH buffer ring.
#include "batch_commands.h"

#include <gtest/gtest.h>

#include <cstring>
#include <system_error>
#include <vector>

#include "ring.h"

namespace {

using ublk::BatchCommands;
using ublk::DataPath;
namespace abi = ublk::abi;

abi::BatchIo header(const io_uring_sqe& sqe) {
  abi::BatchIo cmd;
  std::memcpy(&cmd, sqe.cmd, sizeof(cmd));
  return cmd;
}

abi::BatchElem element(const io_uring_sqe& sqe, size_t i, size_t elemBytes) {
  abi::BatchElem e;
  std::memcpy(&e, reinterpret_cast<const std::byte*>(sqe.addr) + i * elemBytes, sizeof(e));
  return e;
}

TEST(BatchCommands, CopyModeCarriesEachTagsBuffer) {
  ublk::Ring ring(8, 0);
  std::vector<std::byte> buffers(4 * 16);
  std::vector<std::byte*> data{&buffers[0], &buffers[16], &buffers[32], &buffers[48]};
  BatchCommands batch(ring.get(), 2, 4, DataPath::Copy, data);
  io_uring_sqe sqe{};
  batch.prepPrep(&sqe);
  EXPECT_EQ(sqe.cmd_op, abi::batch::kPrepIoCmds);
  const abi::BatchIo cmd = header(sqe);
  EXPECT_EQ(cmd.q_id, 2);
  EXPECT_EQ(cmd.nr_elem, 4);
  EXPECT_EQ(cmd.elem_bytes, 16);
  EXPECT_EQ(cmd.flags, abi::batch::kHasBufAddr);
  for (uint16_t tag = 0; tag < 4; ++tag) {
    EXPECT_EQ(element(sqe, tag, 16).tag, tag);
    uint64_t addr;
    std::memcpy(&addr, reinterpret_cast<const std::byte*>(sqe.addr) + tag * 16 + 8, sizeof(addr));
    EXPECT_EQ(addr, reinterpret_cast<uintptr_t>(data[tag]));
  }
}

TEST(BatchCommands, CommitCarriesTheBatchsResults) {
  ublk::Ring ring(8, 0);
  std::vector<std::byte*> none(8, nullptr);
  BatchCommands batch(ring.get(), 0, 8, DataPath::ZeroCopy, none);
  EXPECT_FALSE(batch.hasCommits());
  batch.addCommit(5, 4096);
  batch.addCommit(3, -5);
  io_uring_sqe sqe{};
  const uint16_t slot = batch.prepCommit(&sqe);
  EXPECT_FALSE(batch.hasCommits());
  EXPECT_EQ(sqe.cmd_op, abi::batch::kCommitIoCmds);
  EXPECT_EQ(header(sqe).nr_elem, 2);
  EXPECT_EQ(header(sqe).elem_bytes, 8);
  EXPECT_EQ(header(sqe).flags, abi::batch::kAutoBufRegFallback);
  // AUTO_BUF_REG: a tag's slot never moves.
  EXPECT_EQ(element(sqe, 0, 8).tag, 5);
  EXPECT_EQ(element(sqe, 0, 8).buf_index, 5);
  EXPECT_EQ(element(sqe, 0, 8).result, 4096);
  EXPECT_EQ(element(sqe, 1, 8).result, -5);
  EXPECT_NO_THROW(batch.commitDone(slot, 16, 0));
}

TEST(BatchCommands, APartialCommitIsAnError) {
  ublk::Ring ring(8, 0);
  std::vector<std::byte*> none(8, nullptr);
  BatchCommands batch(ring.get(), 0, 8, DataPath::None, none);
  batch.addCommit(1, 512);
  batch.addCommit(2, 512);
  io_uring_sqe sqe{};
  const uint16_t slot = batch.prepCommit(&sqe);
  EXPECT_THROW(batch.commitDone(slot, 8, 0), std::system_error);  // took 1 of 2
  batch.addCommit(1, 512);
  const uint16_t again = batch.prepCommit(&sqe);
  EXPECT_EQ(again, slot);  // the slot came back
  EXPECT_THROW(batch.commitDone(again, -EBUSY, 0), std::system_error);
}

TEST(BatchCommands, FetchIsMultishotWithBufferSelect) {
  ublk::Ring ring(8, 0);
  std::vector<std::byte*> none(8, nullptr);
  BatchCommands batch(ring.get(), 1, 8, DataPath::None, none);
  io_uring_sqe sqe{};
  batch.prepFetch(&sqe);
  EXPECT_EQ(sqe.cmd_op, abi::batch::kFetchIoCmds);
  EXPECT_EQ(sqe.uring_cmd_flags, 1U << 1);
  EXPECT_NE(sqe.flags & IOSQE_BUFFER_SELECT, 0);
  EXPECT_EQ(header(sqe).elem_bytes, 2);
  EXPECT_EQ(header(sqe).flags, 0);
  // A CQE that ends the FETCH: re-arm after a used-up buffer, stop after an abort.
  io_uring_cqe end{.user_data = 0, .res = -ENOBUFS, .flags = 0};
  EXPECT_EQ(batch.fetchEnd(end), BatchCommands::FetchEnd::Rearm);
  end.res = -ENODEV;
  EXPECT_EQ(batch.fetchEnd(end), BatchCommands::FetchEnd::Aborted);
  end.res = -EINVAL;
  EXPECT_THROW(batch.fetchEnd(end), std::system_error);
  io_uring_cqe more{.user_data = 0, .res = 4, .flags = IORING_CQE_F_MORE};
  EXPECT_EQ(batch.fetchEnd(more), BatchCommands::FetchEnd::Armed);
}

}  // namespace
