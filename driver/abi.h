// The ublk kernel ABI as ublkd uses it: command opcodes, wire structs, feature bits and states.
// Defined here rather than taken from <linux/ublk_cmd.h> because Debian 12's header is from 6.1
// and lacks the ioctl-encoded opcodes and everything newer; sizes and opcode values are
// static_assert'ed against the kernel's numbers.
#pragma once

#include <linux/ioctl.h>

#include <cstddef>
#include <cstdint>

namespace ublk::abi {

// struct ublksrv_ctrl_cmd: the 32-byte payload of a control uring_cmd (in an SQE128 slot).
struct CtrlCmd {
  uint32_t dev_id = 0;
  uint16_t queue_id = 0xffff;
  uint16_t len = 0;
  uint64_t addr = 0;
  uint64_t data = 0;
  uint16_t dev_path_len = 0;
  uint16_t pad = 0;
  uint32_t reserved = 0;
};
static_assert(sizeof(CtrlCmd) == 32);

// struct ublksrv_ctrl_dev_info
struct DevInfo {
  uint16_t nr_hw_queues = 0;
  uint16_t queue_depth = 0;
  uint16_t state = 0;
  uint16_t pad0 = 0;
  uint32_t max_io_buf_bytes = 0;
  uint32_t dev_id = 0;
  int32_t ublksrv_pid = 0;
  uint32_t reserved0 = 0;
  uint64_t flags = 0;
  uint64_t ublksrv_flags = 0;
  uint32_t owner_uid = 0;
  uint32_t owner_gid = 0;
  uint64_t reserved1 = 0;
  uint64_t reserved2 = 0;
};
static_assert(sizeof(DevInfo) == 64);

// struct ublksrv_io_desc: one per tag in the read-only descriptor mmap of /dev/ublkcN.
struct IoDesc {
  uint32_t op_flags;
  uint32_t nr_sectors;
  uint64_t start_sector;
  uint64_t addr;
};
static_assert(sizeof(IoDesc) == 24);

// struct ublksrv_io_cmd: the payload of a per-I/O uring_cmd.
struct IoCmd {
  uint16_t q_id;
  uint16_t tag;
  int32_t result;
  uint64_t addr;
};
static_assert(sizeof(IoCmd) == 16);

// struct ublk_params and its parts (7.2 layout; older kernels copy the prefix they know and drop
// type bits they don't, so len = sizeof(Params) is right everywhere).
struct ParamBasic {
  uint32_t attrs;
  uint8_t logical_bs_shift;
  uint8_t physical_bs_shift;
  uint8_t io_opt_shift;
  uint8_t io_min_shift;
  uint32_t max_sectors;
  uint32_t chunk_sectors;
  uint64_t dev_sectors;
  uint64_t virt_boundary_mask;
};
struct ParamDiscard {
  uint32_t discard_alignment;
  uint32_t discard_granularity;
  uint32_t max_discard_sectors;
  uint32_t max_write_zeroes_sectors;
  uint16_t max_discard_segments;
  uint16_t reserved0;
};
struct ParamDevt {
  uint32_t char_major;
  uint32_t char_minor;
  uint32_t disk_major;
  uint32_t disk_minor;
};
struct ParamDmaAlign {
  uint32_t alignment;  // a mask: request memory must be aligned to alignment + 1 bytes
  uint8_t pad[4];
};
struct Params {
  uint32_t len;
  uint32_t types;
  ParamBasic basic;
  ParamDiscard discard;
  ParamDevt devt;
  uint8_t zoned[32];
  ParamDmaAlign dma;
  alignas(8) uint8_t seg[16];  // holds a u64 in the kernel, hence 8-aligned at 120
  uint8_t integrity[16];
};
static_assert(sizeof(ParamBasic) == 32 && sizeof(ParamDiscard) == 20 && sizeof(ParamDevt) == 16);
static_assert(offsetof(Params, basic) == 8 && offsetof(Params, discard) == 40 && offsetof(Params, devt) == 60);
static_assert(offsetof(Params, zoned) == 76 && offsetof(Params, dma) == 108 && offsetof(Params, seg) == 120 &&
              sizeof(Params) == 152);

namespace param {
constexpr uint32_t kTypeBasic = 1 << 0;
constexpr uint32_t kTypeDiscard = 1 << 1;
constexpr uint32_t kTypeDevt = 1 << 2;
constexpr uint32_t kTypeDmaAlign = 1 << 4;  // 6.15; older kernels drop it

constexpr uint32_t kAttrReadOnly = 1 << 0;
constexpr uint32_t kAttrRotational = 1 << 1;
constexpr uint32_t kAttrVolatileCache = 1 << 2;
constexpr uint32_t kAttrFua = 1 << 3;
}  // namespace param

// Request operations and flags in IoDesc::op_flags (UBLK_IO_OP_*, UBLK_IO_F_*).
enum class Op : uint8_t { Read = 0, Write = 1, Flush = 2, Discard = 3, WriteSame = 4, WriteZeroes = 5 };
constexpr Op opOf(const IoDesc& desc) { return static_cast<Op>(desc.op_flags & 0xff); }
namespace ioflag {
constexpr uint32_t kFua = 1 << 13;
constexpr uint32_t kNoUnmap = 1 << 15;
// AUTO_BUF_REG with the fallback flag: the kernel could not register the request's pages, so the
// server must (REGISTER_IO_BUF) before its fixed-buffer I/O.
constexpr uint32_t kNeedRegBuf = 1 << 17;
}  // namespace ioflag

// The descriptor array of queue q lives at this offset of /dev/ublkcN (UBLKSRV_CMD_BUF_OFFSET
// plus q times the largest possible array, page-rounded).
constexpr uint32_t kMaxQueueDepth = 4096;
constexpr uint64_t descArrayOffset(uint16_t queue, uint64_t pageSize) {
  const uint64_t maxArray = (kMaxQueueDepth * sizeof(IoDesc) + pageSize - 1) / pageSize * pageSize;
  return queue * maxArray;
}

constexpr uint32_t encodeRead(uint32_t nr, uint32_t size) { return _IOC(_IOC_READ, 'u', nr, size); }
constexpr uint32_t encodeReadWrite(uint32_t nr, uint32_t size) { return _IOC(_IOC_READ | _IOC_WRITE, 'u', nr, size); }

// Control commands (UBLK_U_CMD_*), ioctl-encoded: every kernel with ublk's 6.4+ ABI takes them.
namespace cmd {
constexpr uint32_t kGetQueueAffinity = encodeRead(0x01, sizeof(CtrlCmd));
constexpr uint32_t kGetDevInfo = encodeRead(0x02, sizeof(CtrlCmd));
constexpr uint32_t kAddDev = encodeReadWrite(0x04, sizeof(CtrlCmd));
constexpr uint32_t kDelDev = encodeReadWrite(0x05, sizeof(CtrlCmd));
constexpr uint32_t kStartDev = encodeReadWrite(0x06, sizeof(CtrlCmd));
constexpr uint32_t kStopDev = encodeReadWrite(0x07, sizeof(CtrlCmd));
constexpr uint32_t kSetParams = encodeReadWrite(0x08, sizeof(CtrlCmd));
constexpr uint32_t kGetParams = encodeRead(0x09, sizeof(CtrlCmd));
constexpr uint32_t kStartUserRecovery = encodeReadWrite(0x10, sizeof(CtrlCmd));
constexpr uint32_t kEndUserRecovery = encodeReadWrite(0x11, sizeof(CtrlCmd));
constexpr uint32_t kGetDevInfo2 = encodeRead(0x12, sizeof(CtrlCmd));
constexpr uint32_t kGetFeatures = encodeRead(0x13, sizeof(CtrlCmd));
constexpr uint32_t kDelDevAsync = encodeRead(0x14, sizeof(CtrlCmd));
constexpr uint32_t kUpdateSize = encodeReadWrite(0x15, sizeof(CtrlCmd));
constexpr uint32_t kQuiesceDev = encodeReadWrite(0x16, sizeof(CtrlCmd));
constexpr uint32_t kTryStopDev = encodeReadWrite(0x17, sizeof(CtrlCmd));

static_assert(kGetQueueAffinity == 0x80207501);
static_assert(kAddDev == 0xc0207504);
static_assert(kGetFeatures == 0x80207513);
static_assert(kDelDevAsync == 0x80207514);
static_assert(kTryStopDev == 0xc0207517);
}  // namespace cmd

// Per-I/O commands (UBLK_U_IO_*).
namespace io {
constexpr uint32_t kFetchReq = encodeReadWrite(0x20, sizeof(IoCmd));
constexpr uint32_t kCommitAndFetchReq = encodeReadWrite(0x21, sizeof(IoCmd));
constexpr uint32_t kNeedGetData = encodeReadWrite(0x22, sizeof(IoCmd));
// SUPPORT_ZERO_COPY: the request's pages become (or stop being) fixed buffer IoCmd::addr of the
// ring the command is issued on.
constexpr uint32_t kRegisterIoBuf = encodeReadWrite(0x23, sizeof(IoCmd));
constexpr uint32_t kUnregisterIoBuf = encodeReadWrite(0x24, sizeof(IoCmd));
static_assert(kFetchReq == 0xc0107520);
static_assert(kCommitAndFetchReq == 0xc0107521);

constexpr int kResOk = 0;
constexpr int kResNeedGetData = 1;
constexpr int kResAbort = -19;  // -ENODEV: the tag is dead; never resubmit it

// struct ublk_auto_buf_reg, carried in sqe->addr of FETCH and COMMIT_AND_FETCH under AUTO_BUF_REG:
// the fixed-buffer slot the kernel registers the next request's pages in, and flags.
constexpr uint8_t kAutoBufRegFallback = 1 << 0;  // a failed registration arrives as kNeedRegBuf
constexpr uint64_t autoBufReg(uint16_t index, uint8_t flags) { return uint64_t{index} | (uint64_t{flags} << 16); }
}  // namespace io

// Feature bits (UBLK_F_*), as GET_FEATURES reports them and ADD_DEV negotiates them.
namespace feature {
constexpr uint64_t kSupportZeroCopy = 1ULL << 0;
constexpr uint64_t kUringCmdCompInTask = 1ULL << 1;
constexpr uint64_t kNeedGetData = 1ULL << 2;
constexpr uint64_t kUserRecovery = 1ULL << 3;
constexpr uint64_t kUserRecoveryReissue = 1ULL << 4;
constexpr uint64_t kUnprivilegedDev = 1ULL << 5;
constexpr uint64_t kCmdIoctlEncode = 1ULL << 6;
constexpr uint64_t kUserCopy = 1ULL << 7;
constexpr uint64_t kZoned = 1ULL << 8;
constexpr uint64_t kUserRecoveryFailIo = 1ULL << 9;
constexpr uint64_t kUpdateSize = 1ULL << 10;
constexpr uint64_t kAutoBufReg = 1ULL << 11;
constexpr uint64_t kQuiesce = 1ULL << 12;
constexpr uint64_t kPerIoDaemon = 1ULL << 13;
constexpr uint64_t kBufRegOffDaemon = 1ULL << 14;
constexpr uint64_t kBatchIo = 1ULL << 15;
constexpr uint64_t kIntegrity = 1ULL << 16;
constexpr uint64_t kSafeStopDev = 1ULL << 17;
constexpr uint64_t kNoAutoPartScan = 1ULL << 18;
constexpr uint64_t kShmemZc = 1ULL << 19;
}  // namespace feature

// Device states (UBLK_S_DEV_*).
enum class DevState : uint16_t { Dead = 0, Live = 1, Quiesced = 2, FailIo = 3 };

}  // namespace ublk::abi
