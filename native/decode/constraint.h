// The vocabulary constraint of rewrite decoding: every generated word must be a word of a given list (the
// catalog's and the query log's words). Words live in a byte trie; the tokenizer's tokens are byte strings
// (byte-level BPE, so a token may end mid-word or start with a space). A decoding state is the trie node of
// the word being spelt (the root between words); a token is allowed from a state when walking its bytes
// stays inside the trie, a whitespace byte being allowed only where a whole word has just ended.
// Plain C++17: the N-API wrapper is in native/napi/decode.cc.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace minielm {
namespace decode {

class WordConstraint {
 public:
  static constexpr int32_t kRoot = 0;

  // token_bytes[t]: the bytes token t stands for; special[t]: a special token (never generated under the
  // constraint, except the end-of-sequence token where a word is complete). Empty words are ignored.
  WordConstraint(std::vector<std::string> token_bytes, std::vector<uint8_t> special, const std::vector<std::string>& words);

  int64_t vocab_size() const { return static_cast<int64_t>(token_bytes_.size()); }
  int64_t num_words() const { return num_words_; }
  int64_t num_nodes() const { return static_cast<int64_t>(nodes_.size()); }

  // The state after token t from state s, or -1 when t would spell a word outside the list.
  int32_t step(int32_t s, int32_t t) const;
  // True where the text may end (or a special token may follow): between words or at a whole word.
  bool can_end(int32_t s) const { return s == kRoot || nodes_[static_cast<size_t>(s)].terminal; }
  // The non-special tokens allowed from state s, ascending. From the root the list is precomputed.
  std::vector<int32_t> allowed(int32_t s) const;
  const std::vector<int32_t>& root_allowed() const { return root_allowed_; }

 private:
  struct Node {
    uint32_t first = 0;  // children [first, first + count) of edges_, sorted by byte
    uint16_t count = 0;
    bool terminal = false;
  };
  struct Edge {
    uint8_t byte;
    int32_t child;
  };
  // One trie node of the tokens' byte strings, for the joint walk.
  struct TokNode {
    std::vector<std::pair<uint8_t, int32_t>> children;
    std::vector<int32_t> ends;  // tokens whose bytes end here
  };

  int32_t child(int32_t node, uint8_t b) const;
  // -1, or the state after byte b from state s.
  int32_t advance(int32_t s, uint8_t b) const;
  void walk(int32_t tok_node, int32_t state, std::vector<int32_t>* out) const;

  std::vector<std::string> token_bytes_;
  std::vector<uint8_t> special_;
  std::vector<Node> nodes_;
  std::vector<Edge> edges_;
  std::vector<TokNode> tok_nodes_;
  std::vector<int32_t> root_allowed_;
  int64_t num_words_ = 0;
};

}  // namespace decode
}  // namespace minielm
