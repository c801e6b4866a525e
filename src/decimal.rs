//! Numbers in decimal without the formatting machinery: the table and
//! the JSON of `-a` write several per socket, and the out-of-memory
//! message may not allocate.

/// The decimal digits of `n`, written into `digits`.
pub fn digits(n: u64, digits: &mut [u8; 20]) -> &[u8] {
    let mut start = digits.len();
    let mut rest = n;
    loop {
        start -= 1;
        digits[start] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    &digits[start..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_are_display_s() {
        for n in [0u64, 7, 10, 65_535, 4_294_967_295, u64::MAX] {
            assert_eq!(digits(n, &mut [0; 20]), n.to_string().as_bytes());
        }
    }
}
