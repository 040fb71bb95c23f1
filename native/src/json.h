// Tiny JSON reader for config.json, safetensors headers and index files.
// Recursive descent; numbers are kept as double (plus the raw text so that
// 64-bit byte offsets stay exact). Errors throw std::runtime_error with the offset.
#pragma once
#include <cstdint>
#include <cstdlib>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace fc {
namespace json {

struct Value {
  enum Kind { Null, Bool, Number, String, Array, Object } kind = Null;
  bool b = false;
  double num = 0;
  std::string str;  // String, or the raw text of a Number
  std::vector<Value> arr;
  std::vector<std::pair<std::string, Value>> obj;

  bool is_null() const { return kind == Null; }
  bool is_number() const { return kind == Number; }
  bool is_string() const { return kind == String; }
  bool is_array() const { return kind == Array; }
  bool is_object() const { return kind == Object; }
  bool is_bool() const { return kind == Bool; }
  const Value* get(const std::string& k) const {
    if (kind != Object) return nullptr;
    for (auto& kv : obj)
      if (kv.first == k) return &kv.second;
    return nullptr;
  }
  // Exact non-negative integer (for byte offsets / shapes), false if not one.
  bool as_u64(uint64_t& out) const {
    if (kind != Number) return false;
    if (str.empty()) return false;
    uint64_t v = 0;
    for (char c : str) {
      if (c < '0' || c > '9') return false;
      uint64_t nv = v * 10 + uint64_t(c - '0');
      if (nv / 10 != v) return false;  // overflow
      v = nv;
    }
    out = v;
    return true;
  }
};

class Parser {
 public:
  Parser(const char* p, size_t n) : s_(p), n_(n) {}
  Value parse() {
    Value v = value(0);
    ws();
    if (i_ != n_) fail("trailing characters after JSON value");
    return v;
  }

 private:
  const char* s_;
  size_t n_;
  size_t i_ = 0;

  [[noreturn]] void fail(const std::string& what) {
    throw std::runtime_error("invalid JSON at offset " + std::to_string(i_) + ": " + what);
  }
  void ws() {
    while (i_ < n_ && (s_[i_] == ' ' || s_[i_] == '\n' || s_[i_] == '\r' || s_[i_] == '\t')) i_++;
  }
  char peek() {
    ws();
    if (i_ >= n_) fail("unexpected end of input");
    return s_[i_];
  }
  void expect(char c) {
    if (peek() != c) fail(std::string("expected '") + c + "'");
    i_++;
  }
  bool lit(const char* w) {
    size_t L = 0;
    while (w[L]) L++;
    if (n_ - i_ >= L && std::string(s_ + i_, L) == w) {
      i_ += L;
      return true;
    }
    return false;
  }
  Value value(int depth) {
    if (depth > 64) fail("nesting too deep");
    char c = peek();
    Value v;
    if (c == '{') {
      v.kind = Value::Object;
      i_++;
      if (peek() == '}') {
        i_++;
        return v;
      }
      for (;;) {
        if (peek() != '"') fail("expected object key");
        std::string k = string();
        expect(':');
        v.obj.emplace_back(std::move(k), value(depth + 1));
        char d = peek();
        i_++;
        if (d == '}') break;
        if (d != ',') fail("expected ',' or '}'");
      }
    } else if (c == '[') {
      v.kind = Value::Array;
      i_++;
      if (peek() == ']') {
        i_++;
        return v;
      }
      for (;;) {
        v.arr.push_back(value(depth + 1));
        char d = peek();
        i_++;
        if (d == ']') break;
        if (d != ',') fail("expected ',' or ']'");
      }
    } else if (c == '"') {
      v.kind = Value::String;
      v.str = string();
    } else if (lit("true")) {
      v.kind = Value::Bool;
      v.b = true;
    } else if (lit("false")) {
      v.kind = Value::Bool;
    } else if (lit("null")) {
      v.kind = Value::Null;
    } else if (c == '-' || (c >= '0' && c <= '9')) {
      size_t st = i_;
      if (s_[i_] == '-') i_++;
      while (i_ < n_ && ((s_[i_] >= '0' && s_[i_] <= '9') || s_[i_] == '.' || s_[i_] == 'e' || s_[i_] == 'E' ||
                         s_[i_] == '+' || s_[i_] == '-'))
        i_++;
      v.kind = Value::Number;
      v.str.assign(s_ + st, i_ - st);
      char* end = nullptr;
      v.num = std::strtod(v.str.c_str(), &end);
      if (end != v.str.c_str() + v.str.size()) fail("bad number");
    } else {
      fail(std::string("unexpected character '") + c + "'");
    }
    return v;
  }
  static void utf8(std::string& o, uint32_t cp) {
    if (cp < 0x80) o += char(cp);
    else if (cp < 0x800) { o += char(0xC0 | (cp >> 6)); o += char(0x80 | (cp & 63)); }
    else if (cp < 0x10000) { o += char(0xE0 | (cp >> 12)); o += char(0x80 | ((cp >> 6) & 63)); o += char(0x80 | (cp & 63)); }
    else { o += char(0xF0 | (cp >> 18)); o += char(0x80 | ((cp >> 12) & 63)); o += char(0x80 | ((cp >> 6) & 63)); o += char(0x80 | (cp & 63)); }
  }
  uint32_t hex4() {
    if (n_ - i_ < 4) fail("bad \\u escape");
    uint32_t v = 0;
    for (int k = 0; k < 4; k++) {
      char h = s_[i_++];
      v <<= 4;
      if (h >= '0' && h <= '9') v |= uint32_t(h - '0');
      else if (h >= 'a' && h <= 'f') v |= uint32_t(h - 'a' + 10);
      else if (h >= 'A' && h <= 'F') v |= uint32_t(h - 'A' + 10);
      else fail("bad \\u escape");
    }
    return v;
  }
  std::string string() {
    expect('"');
    std::string o;
    for (;;) {
      if (i_ >= n_) fail("unterminated string");
      char c = s_[i_++];
      if (c == '"') break;
      if (c == '\\') {
        if (i_ >= n_) fail("unterminated string");
        char e = s_[i_++];
        switch (e) {
          case '"': o += '"'; break;
          case '\\': o += '\\'; break;
          case '/': o += '/'; break;
          case 'b': o += '\b'; break;
          case 'f': o += '\f'; break;
          case 'n': o += '\n'; break;
          case 'r': o += '\r'; break;
          case 't': o += '\t'; break;
          case 'u': {
            uint32_t cp = hex4();
            if (cp >= 0xD800 && cp < 0xDC00 && n_ - i_ >= 6 && s_[i_] == '\\' && s_[i_ + 1] == 'u') {
              i_ += 2;
              uint32_t lo = hex4();
              cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            }
            utf8(o, cp);
            break;
          }
          default: fail("bad escape");
        }
      } else {
        o += c;
      }
    }
    return o;
  }
};

inline Value parse(const char* p, size_t n) { return Parser(p, n).parse(); }
inline Value parse(const std::string& s) { return parse(s.data(), s.size()); }

}  // namespace json
}  // namespace fc
