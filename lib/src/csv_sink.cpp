#include "csv_sink.hpp"

#include <cstdint>
#include <iterator>
#include <span>
#include <type_traits>

#include "temporary_file.hpp"
#include <fmt/format.h>

#include "featpool/element.hpp"

namespace featpool {
namespace {

// Rows are gathered up to this size and then written, so an output of any
// size costs one buffer, never the whole text.
constexpr std::size_t kFlushBytes = std::size_t{1} << 20;

// The value as it is printed: fmt's shortest text that reads back as the
// same value of the output dtype. fmt has no half type, so a half is
// printed as the float it widens to: that text reads back as the same half,
// since it is nearer to it than half a float ulp, far below half a half's.
template <class T>
auto printable(T value) {
  if constexpr (std::is_same_v<T, float16_bits>) {
    return static_cast<float>(to_double(value));
  } else {
    return value;
  }
}

// RFC 4180: a field holding the separator, a double quote, CR or LF is
// put in double quotes, its own double quotes doubled. Bytes that are not
// UTF-8 (file names may hold any) are written as they are.
bool needs_quotes(const std::string& field, char separator) {
  return field.find_first_of(std::string{separator, '"', '\r', '\n'}) != std::string::npos;
}

class csv_sink final : public tensor_sink {
 public:
  csv_sink(char separator, const std::string& target, bool sync, on_existing existing)
      : separator_(separator), file_(target, existing), sync_(sync) {}

  void write(const std::string& name, const pooled_tensor& tensor,
             const std::optional<provenance>&) override {
    std::uint64_t width = tensor.shape.back();
    std::uint64_t rows = tensor.shape.size() == 2 ? tensor.shape[0] : 1;
    if (!header_written_) write_header(width);
    set_label(name);
    std::span<const std::byte> bytes(tensor.data);
    // bool is written 0 and 1, not True and False: numpy reads the text
    // "False" as true (any non-empty string is), and 0 and 1 parse anywhere.
    if (tensor.type == dtype::bool_) {
      append_rows(elements_of<std::uint8_t>(bytes), rows, width,
                  [&](std::uint8_t value) { buffer_ += value ? '1' : '0'; });
      return;
    }
    visit_dtype(tensor.type, [&]<class T>(std::type_identity<T>) {
      append_rows(elements_of<T>(bytes), rows, width, [&](T value) {
        fmt::format_to(std::back_inserter(buffer_), "{}", printable(value));
      });
    });
  }

  void finish() override {
    flush();
    file_.finish(sync_);
  }
  void publish() override { file_.publish(sync_); }

 private:
  void write_header(std::uint64_t width) {
    buffer_ += "source";
    for (std::uint64_t k = 0; k < width; ++k) {
      fmt::format_to(std::back_inserter(buffer_), "{}f{}", separator_, k);
    }
    buffer_ += '\n';
    header_written_ = true;
  }

  // The label's text before and after the sample number, quoted as a whole.
  void set_label(const std::string& name) {
    bool quoted = needs_quotes(name, separator_);
    label_open_.clear();
    label_close_.clear();
    if (quoted) label_open_ += '"';
    for (char c : name) {
      if (quoted && c == '"') label_open_ += '"';
      label_open_ += c;
    }
    label_open_ += '#';
    if (quoted) label_close_ += '"';
  }

  // Row by row, each row's values in memory order (the layout's, N first).
  template <class T, class Print>
  void append_rows(std::span<const T> values, std::uint64_t rows, std::uint64_t width,
                   Print print) {
    for (std::uint64_t row = 0; row < rows; ++row) {
      buffer_ += label_open_;
      fmt::format_to(std::back_inserter(buffer_), "{}", row);
      buffer_ += label_close_;
      for (std::uint64_t k = 0; k < width; ++k) {
        buffer_ += separator_;
        print(values[row * width + k]);
      }
      buffer_ += '\n';
      if (buffer_.size() >= kFlushBytes) flush();
    }
  }

  void flush() {
    file_.write(buffer_);
    buffer_.clear();
  }

  char separator_;
  temporary_file file_;
  bool sync_;
  bool header_written_ = false;
  std::string label_open_;
  std::string label_close_;
  std::string buffer_;
};

}  // namespace

std::unique_ptr<tensor_sink> create_csv_sink(char separator, const std::string& target, bool sync,
                                             on_existing existing) {
  return std::make_unique<csv_sink>(separator, target, sync, existing);
}

}  // namespace featpool
