// A small, seeded, platform-independent pseudo-random generator (xoshiro256**, seeded through
// splitmix64). std::uniform_*_distribution differ between standard libraries, so everything that
// must replay bit-for-bit from a seed (the simulator, election timeouts in the core) uses this.
#pragma once

#include <cstdint>

namespace raftkv {

class Rng {
 public:
  explicit Rng(uint64_t seed) {
    for (uint64_t& word : state_) word = SplitMix(seed);
  }

  uint64_t Next() {
    const uint64_t result = RotateLeft(state_[1] * 5, 7) * 9;
    const uint64_t t = state_[1] << 17;
    state_[2] ^= state_[0];
    state_[3] ^= state_[1];
    state_[1] ^= state_[2];
    state_[0] ^= state_[3];
    state_[2] ^= t;
    state_[3] = RotateLeft(state_[3], 45);
    return result;
  }

  // Uniform in [0, bound); bound must be > 0. The modulo bias is below 2^-32 for the small
  // bounds used here, which is irrelevant for timeouts and fault schedules.
  uint64_t Below(uint64_t bound) { return Next() % bound; }

  // Uniform in [low, high], inclusive.
  int64_t Between(int64_t low, int64_t high) {
    return low + static_cast<int64_t>(Below(static_cast<uint64_t>(high - low) + 1));
  }

  // True with the given probability (0..1).
  bool Chance(double probability) { return Fraction() < probability; }

  // Uniform in [0, 1).
  double Fraction() { return static_cast<double>(Next() >> 11) * 0x1.0p-53; }

 private:
  static uint64_t RotateLeft(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  static uint64_t SplitMix(uint64_t& x) {
    uint64_t z = (x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }

  uint64_t state_[4];
};

}  // namespace raftkv
