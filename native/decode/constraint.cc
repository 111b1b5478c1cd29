#include "constraint.h"

#include <algorithm>
#include <map>

#include "../core/error.h"

namespace minielm {
namespace decode {

namespace {
bool is_space(uint8_t b) { return b == ' ' || b == '\t' || b == '\n' || b == '\r' || b == '\f' || b == '\v'; }
}  // namespace

WordConstraint::WordConstraint(std::vector<std::string> token_bytes, std::vector<uint8_t> special,
                               const std::vector<std::string>& words)
    : token_bytes_(std::move(token_bytes)), special_(std::move(special)) {
  if (special_.size() != token_bytes_.size())
    throw Error("MINIELM_INVALID_ARGUMENT", "word constraint: one special flag per token is needed");
  // Build with ordered maps, then flatten into sorted edge arrays (compact, cache-friendly lookups).
  std::vector<std::map<uint8_t, int32_t>> build(1);
  std::vector<bool> terminal(1, false);
  for (const std::string& w : words) {
    if (w.empty()) continue;
    bool ok = true;
    for (unsigned char c : w) ok = ok && !is_space(c);
    if (!ok) throw Error("MINIELM_INVALID_ARGUMENT", "word constraint: the word '" + w + "' contains whitespace; pass single words");
    int32_t n = kRoot;
    for (unsigned char c : w) {
      auto it = build[static_cast<size_t>(n)].find(c);
      if (it == build[static_cast<size_t>(n)].end()) {
        const int32_t id = static_cast<int32_t>(build.size());
        build[static_cast<size_t>(n)].emplace(c, id);
        build.emplace_back();
        terminal.push_back(false);
        n = id;
      } else {
        n = it->second;
      }
    }
    if (!terminal[static_cast<size_t>(n)]) ++num_words_;
    terminal[static_cast<size_t>(n)] = true;
  }
  nodes_.resize(build.size());
  for (size_t i = 0; i < build.size(); ++i) {
    nodes_[i].first = static_cast<uint32_t>(edges_.size());
    nodes_[i].count = static_cast<uint16_t>(build[i].size());
    nodes_[i].terminal = terminal[i];
    for (const auto& [b, c] : build[i]) edges_.push_back(Edge{b, c});
  }
  // The tokens' own trie, so allowed() walks both tries together instead of testing every token.
  tok_nodes_.emplace_back();
  for (size_t t = 0; t < token_bytes_.size(); ++t) {
    if (special_[t] || token_bytes_[t].empty()) continue;
    int32_t n = 0;
    for (unsigned char c : token_bytes_[t]) {
      auto& ch = tok_nodes_[static_cast<size_t>(n)].children;
      auto it = std::find_if(ch.begin(), ch.end(), [c](const std::pair<uint8_t, int32_t>& e) { return e.first == c; });
      if (it == ch.end()) {
        const int32_t id = static_cast<int32_t>(tok_nodes_.size());
        tok_nodes_[static_cast<size_t>(n)].children.emplace_back(c, id);
        tok_nodes_.emplace_back();
        n = id;
      } else {
        n = it->second;
      }
    }
    tok_nodes_[static_cast<size_t>(n)].ends.push_back(static_cast<int32_t>(t));
  }
  root_allowed_ = allowed(kRoot);
}

int32_t WordConstraint::child(int32_t node, uint8_t b) const {
  const Node& n = nodes_[static_cast<size_t>(node)];
  const Edge* lo = edges_.data() + n.first;
  const Edge* hi = lo + n.count;
  const Edge* it = std::lower_bound(lo, hi, b, [](const Edge& e, uint8_t v) { return e.byte < v; });
  return it != hi && it->byte == b ? it->child : -1;
}

int32_t WordConstraint::advance(int32_t s, uint8_t b) const {
  if (is_space(b)) return can_end(s) ? kRoot : -1;
  return child(s, b);
}

int32_t WordConstraint::step(int32_t s, int32_t t) const {
  if (t < 0 || t >= vocab_size() || s < 0 || s >= num_nodes()) return -1;
  if (special_[static_cast<size_t>(t)]) return can_end(s) ? kRoot : -1;
  for (unsigned char c : token_bytes_[static_cast<size_t>(t)]) {
    s = advance(s, c);
    if (s < 0) return -1;
  }
  return s;
}

// Depth-first over (token-trie node, state) pairs with an explicit stack: the depth is a token's length in
// bytes, and the tokens are caller input (a 100 KB token of spaces, which the root accepts byte after byte,
// overflowed a pool thread's stack when this recursed).
void WordConstraint::walk(int32_t tok_node, int32_t state, std::vector<int32_t>* out) const {
  std::vector<std::pair<int32_t, int32_t>> todo{{tok_node, state}};
  while (!todo.empty()) {
    const auto [node, s] = todo.back();
    todo.pop_back();
    for (const auto& [b, next_tok] : tok_nodes_[static_cast<size_t>(node)].children) {
      const int32_t next = advance(s, b);
      if (next < 0) continue;
      const TokNode& tn = tok_nodes_[static_cast<size_t>(next_tok)];
      out->insert(out->end(), tn.ends.begin(), tn.ends.end());
      todo.emplace_back(next_tok, next);
    }
  }
}

std::vector<int32_t> WordConstraint::allowed(int32_t s) const {
  std::vector<int32_t> out;
  if (s < 0 || s >= num_nodes()) return out;
  walk(0, s, &out);
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace decode
}  // namespace minielm
