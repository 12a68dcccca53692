// h5py's LZF filter, compatible with h5py's lzf_filter.c byte for byte:
//
//   cd_values[0]  h5py's filter revision (4)
//   cd_values[1]  liblzf's API version (LZF_VERSION)
//   cd_values[2]  the chunk's size in bytes, set when a dataset is created,
//                 used as the first guess for the decompressed size
//
// A compressed chunk is liblzf's raw stream, nothing around it. Compression
// that does not shrink the chunk reports failure: h5py marks the filter
// optional, so HDF5 then stores that chunk unfiltered (a writer must do the
// same). Both directions are here; featpool reads with the decoder today.

#include "lzf_filter.hpp"

#include <algorithm>
#include <cerrno>
#include <climits>

#include "h5_handle.hpp"
#include <liblzf/lzf.h>

namespace featpool::detail {
namespace {

constexpr unsigned kH5pyLzfRevision = 4;
// liblzf's format: a back-reference of 3 bytes expands to at most 264 bytes,
// so no valid stream decompresses to more than 88 times its size. Bounding
// the output buffer by it keeps a corrupt chunk (or a forged size in
// cd_values[2]) from asking for more memory than its data could fill.
constexpr std::size_t kMaxLzfExpansion = 88;

void push_error(const char* function, int line, const char* message) {
  H5Epush2(H5E_DEFAULT, __FILE__, function, static_cast<unsigned>(line), H5E_ERR_CLS, H5E_PLINE,
           H5E_CALLBACK, "%s", message);
}

// Records the filter revision, liblzf's version and the chunk size in the
// dataset creation property list, keeping any values already there.
herr_t lzf_set_local(hid_t dcpl, hid_t type, hid_t) {
  unsigned flags = 0;
  std::size_t count = 8;
  unsigned values[8] = {};
  if (H5Pget_filter_by_id2(dcpl, kLzfFilterId, &flags, &count, values, 0, nullptr, nullptr) < 0) {
    return -1;
  }
  if (count < 3) count = 3;
  if (values[0] == 0) values[0] = kH5pyLzfRevision;
  if (values[1] == 0) values[1] = LZF_VERSION;

  hsize_t chunk[H5S_MAX_RANK];
  int rank = H5Pget_chunk(dcpl, H5S_MAX_RANK, chunk);
  if (rank < 0) return -1;
  std::size_t size = H5Tget_size(type);
  if (size == 0) return -1;
  for (int i = 0; i < rank; ++i) {
    if (__builtin_mul_overflow(size, chunk[i], &size) || size > UINT_MAX) {
      push_error("lzf_set_local", __LINE__, "chunk is too large for the LZF filter");
      return -1;
    }
  }
  values[2] = static_cast<unsigned>(size);
  return H5Pmodify_filter(dcpl, kLzfFilterId, flags, count, values) < 0 ? -1 : 1;
}

// Compresses into a buffer as long as the input; 0 when LZF cannot shrink it.
std::size_t compress(std::size_t nbytes, std::size_t* buf_size, void** buf) {
  if (nbytes > UINT_MAX) return 0;
  std::size_t out_size = *buf_size;
  void* out = H5allocate_memory(out_size, false);
  if (out == nullptr) {
    push_error("lzf_filter", __LINE__, "cannot allocate the LZF compression buffer");
    return 0;
  }
  unsigned written = lzf_compress(*buf, static_cast<unsigned>(nbytes), out,
                                  static_cast<unsigned>(std::min<std::size_t>(out_size, UINT_MAX)));
  if (written == 0) {
    H5free_memory(out);
    return 0;
  }
  H5free_memory(*buf);
  *buf = out;
  *buf_size = out_size;
  return written;
}

// Decompresses, starting from the recorded chunk size and growing the buffer
// by the input's size while liblzf says it is too small, as h5py does.
std::size_t decompress(std::size_t cd_nelmts, const unsigned cd_values[], std::size_t nbytes,
                       std::size_t* buf_size, void** buf) {
  if (nbytes > UINT_MAX) {
    push_error("lzf_filter", __LINE__, "LZF chunk is too large");
    return 0;
  }
  std::size_t limit = std::min<std::size_t>(nbytes * kMaxLzfExpansion, UINT_MAX);
  std::size_t out_size = cd_nelmts >= 3 && cd_values[2] != 0 ? cd_values[2] : *buf_size;
  out_size = std::max<std::size_t>(std::min(out_size, limit), 1);
  while (true) {
    void* out = H5allocate_memory(out_size, false);
    if (out == nullptr) {
      push_error("lzf_filter", __LINE__, "cannot allocate the LZF decompression buffer");
      return 0;
    }
    errno = 0;
    unsigned written =
        lzf_decompress(*buf, static_cast<unsigned>(nbytes), out, static_cast<unsigned>(out_size));
    if (written != 0) {
      H5free_memory(*buf);
      *buf = out;
      *buf_size = out_size;
      return written;
    }
    H5free_memory(out);
    if (errno != E2BIG) {
      push_error("lzf_filter", __LINE__, "invalid data for LZF decompression");
      return 0;
    }
    if (out_size >= limit) {
      push_error("lzf_filter", __LINE__, "LZF data decompresses to more than it can hold");
      return 0;
    }
    out_size = std::min(out_size + *buf_size, limit);
  }
}

std::size_t lzf_filter(unsigned flags, std::size_t cd_nelmts, const unsigned cd_values[],
                       std::size_t nbytes, std::size_t* buf_size, void** buf) {
  if (flags & H5Z_FLAG_REVERSE) return decompress(cd_nelmts, cd_values, nbytes, buf_size, buf);
  return compress(nbytes, buf_size, buf);
}

const H5Z_class2_t kLzfClass = {
    H5Z_CLASS_T_VERS,  // version of this struct
    kLzfFilterId,      // filter id
    1,                 // encoder present
    1,                 // decoder present
    "lzf",             // name, as h5py registers it
    nullptr,           // can_apply: any type
    lzf_set_local,     // set_local: records the chunk size
    lzf_filter,        // the filter
};

}  // namespace

void register_lzf_filter() {
  h5_lock lock;
  h5_context where;
  where.check(H5Zregister(&kLzfClass), "cannot register the LZF filter");
}

}  // namespace featpool::detail
