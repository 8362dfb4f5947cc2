//! Internet checksum arithmetic (RFC 1071) for the answers' headers.
use synguard_common::Words;

/// Adds the 16-bit big-endian words of `bytes[from..to]` to `sum`.
#[inline(always)]
pub(super) fn sum_words<const N: usize>(
    bytes: &[u8; N],
    from: usize,
    to: usize,
    mut sum: u32,
) -> u32 {
    let mut i = from;
    while i + 1 < N && i + 1 < to {
        sum += u16::from_be_bytes([bytes[i], bytes[i + 1]]) as u32;
        i += 2;
    }
    sum
}

/// The sum of a u32's two 16-bit words.
#[inline(always)]
pub(super) fn words(x: u32) -> u32 {
    (x >> 16) + (x & 0xffff)
}

/// The 16-bit word of two bytes, in network order.
#[inline(always)]
pub(super) fn word(high: u8, low: u8) -> u32 {
    (high as u32) << 8 | low as u32
}

/// The sum of an IPv6 address's 16-bit words (network order: each
/// word's bytes swapped).
#[inline(always)]
pub(super) fn address_words(a: &Words) -> u32 {
    words(a[0].swap_bytes())
        + words(a[1].swap_bytes())
        + words(a[2].swap_bytes())
        + words(a[3].swap_bytes())
}

/// RFC 1071: fold a 32-bit sum into 16 bits.
#[inline(always)]
pub(super) fn fold(mut sum: u32) -> u16 {
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    sum as u16
}
