#!/usr/bin/env python3
"""Recomputes the pinned values of search::data's seeded streams (search/src/data/rng.rs and
search/tests/data.rs) from an independent transcription: the ChaCha8 block function (RFC 8439
with 8 rounds; 64-bit block counter in words 12-13 and 64-bit stream in words 14-15, as
rand_chacha lays them out), Lemire's bounded integers and Fisher-Yates. If the Rust side ever
disagrees, its generator changed and seeds no longer reproduce old runs.

    python3 scripts/seeded_data_pins.py
"""
import struct

MASK = 0xFFFFFFFF


def rotl(x, n):
    return ((x << n) | (x >> (32 - n))) & MASK


def quarter(s, a, b, c, d):
    s[a] = (s[a] + s[b]) & MASK; s[d] = rotl(s[d] ^ s[a], 16)
    s[c] = (s[c] + s[d]) & MASK; s[b] = rotl(s[b] ^ s[c], 12)
    s[a] = (s[a] + s[b]) & MASK; s[d] = rotl(s[d] ^ s[a], 8)
    s[c] = (s[c] + s[d]) & MASK; s[b] = rotl(s[b] ^ s[c], 7)


def block(key, counter, stream):
    init = [0x61707865, 0x3320646E, 0x79622D32, 0x6B206574, *struct.unpack("<8I", key),
            counter & MASK, counter >> 32, stream & MASK, stream >> 32]
    s = init[:]
    for _ in range(4):  # 8 rounds: 4 double rounds
        quarter(s, 0, 4, 8, 12); quarter(s, 1, 5, 9, 13); quarter(s, 2, 6, 10, 14); quarter(s, 3, 7, 11, 15)
        quarter(s, 0, 5, 10, 15); quarter(s, 1, 6, 11, 12); quarter(s, 2, 7, 8, 13); quarter(s, 3, 4, 9, 14)
    return [(a + b) & MASK for a, b in zip(s, init)]


class Stream:
    """search::data::rng::Stream: key = seed (8 bytes LE) + purpose, zero-padded to 32 bytes."""

    def __init__(self, seed, purpose, stream):
        key = struct.pack("<Q", seed) + purpose.encode() + bytes(24 - len(purpose))
        self.words = self._words(key, stream)

    @staticmethod
    def _words(key, stream):
        counter = 0
        while True:
            yield from block(key, counter, stream)
            counter += 1

    def u32(self):
        return next(self.words)

    def u64(self):
        lo = self.u32()
        return lo | (self.u32() << 32)

    def below(self, n):
        m = self.u64() * n
        if m % 2**64 < n:
            threshold = (2**64 - n) % n
            while m % 2**64 < threshold:
                m = self.u64() * n
        return m >> 64


def permutation(n, seed, epoch):
    order = list(range(n))
    rng = Stream(seed, "shuffle", epoch)
    for i in range(n - 1, 0, -1):
        j = rng.below(i + 1)
        order[i], order[j] = order[j], order[i]
    return order


if __name__ == "__main__":
    print("permutation(10, 0, 0) =", permutation(10, 0, 0))
    rng = Stream(5, "augment", 0)
    dy, dx = rng.below(3) - 1, rng.below(3) - 1
    print(f"seed 5, epoch 0, pad 1, flip: dy={dy} dx={dx} flip={rng.u32() >> 31 == 1}")
