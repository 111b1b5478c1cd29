// Errors the core raises carry a stable code; the N-API layer turns them into JS Error objects with `code`.
#pragma once
#include <stdexcept>
#include <string>

namespace minielm {

class Error : public std::runtime_error {
 public:
  Error(std::string code, const std::string& message) : std::runtime_error(message), code_(std::move(code)) {}
  const std::string& code() const { return code_; }

 private:
  std::string code_;
};

inline void require(bool ok, const char* code, const std::string& message) {
  if (!ok) throw Error(code, message);
}

}  // namespace minielm
