// BatchCommands: one queue's side of UBLK_F_BATCH_IO (7.0+). Instead of a FETCH and a
// COMMIT_AND_FETCH per request, the queue sends one PREP_IO_CMDS for all its tags, keeps one
// multishot FETCH_IO_CMDS armed whose CQEs carry the tags of new requests (u16s written into a
// buffer the queue provides through an io_uring buffer ring), and commits a whole batch's results
// with one COMMIT_IO_CMDS. This type builds those commands and reads their CQEs; Queue decides
// when to send them.
#pragma once

#include <liburing.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "abi.h"
#include "data_path.h"
#include "mapped_region.h"

namespace ublk {

class BatchCommands {
 public:
  // `data` holds each tag's buffer in copy mode (the kernel copies a request's data there), else
  // nullptrs. Registers the FETCH buffer ring on `ring`: construct it on the queue's thread.
  BatchCommands(io_uring* ring, uint16_t queue, uint16_t depth, DataPath path, std::span<std::byte* const> data);
  BatchCommands(const BatchCommands&) = delete;
  BatchCommands& operator=(const BatchCommands&) = delete;

  // PREP_IO_CMDS for every tag; its CQE's res is 0 or -errno.
  void prepPrep(io_uring_sqe* sqe);
  // (Re)arms the multishot FETCH_IO_CMDS, with a fresh tag buffer.
  void prepFetch(io_uring_sqe* sqe);

  // The tags of new requests a FETCH CQE delivered (valid until the next call).
  std::span<const uint16_t> fetchedTags(const io_uring_cqe& cqe);
  enum class FetchEnd { Armed, Rearm, Aborted };
  // Whether the FETCH is still armed after this CQE, must be armed again (its buffer ran out), or
  // ended for good: the queue is stopping or quiesced (-ENODEV). Throws on any other error.
  FetchEnd fetchEnd(const io_uring_cqe& cqe) const;

  // A result to commit with the batch's COMMIT_IO_CMDS.
  void addCommit(uint16_t tag, int result);
  bool hasCommits() const { return !pending_.empty(); }
  // Moves the pending results into a COMMIT_IO_CMDS; the returned slot names its buffer, which
  // stays ours until commitDone(slot, res).
  uint16_t prepCommit(io_uring_sqe* sqe);
  // The COMMIT's CQE: throws unless every element was committed (res = bytes of elements).
  void commitDone(uint16_t slot, int res, uint32_t devId);

 private:
  void prepCommand(io_uring_sqe* sqe, uint32_t op, uint16_t flags, uint16_t count, const void* elements);
  void appendElement(std::vector<std::byte>& out, uint16_t tag, int result) const;

  io_uring* ring_;
  uint16_t queue_;
  uint16_t depth_;
  uint16_t flags_;  // kHasBufAddr (copy) or kAutoBufRegFallback (zero copy)
  uint8_t elemBytes_;
  std::span<std::byte* const> data_;
  MappedRegion bufRing_;   // one io_uring_buf entry: the FETCH's tag buffer
  MappedRegion tagBytes_;  // where the kernel writes delivered tags
  size_t tagOffset_ = 0;   // incremental buffer: each CQE's tags follow the previous CQE's
  std::vector<uint16_t> fetched_;
  std::vector<std::byte> prep_;
  std::vector<std::byte> pending_;                // elements of the next COMMIT
  std::vector<std::vector<std::byte>> inFlight_;  // per slot: a COMMIT's elements until its CQE
  std::vector<uint16_t> freeSlots_;
};

}  // namespace ublk
