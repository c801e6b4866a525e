//! "Did you mean": the known names closest to a mistyped one, by edit
//! distance (insertions, deletions, substitutions and swaps of two
//! neighbours), without regard to case. Runs only on the error path.

/// Up to `limit` names within a distance that grows with the length of
/// what was typed, nearest first, then alphabetical.
pub fn closest<'a>(typed: &str, names: impl Iterator<Item = &'a str>, limit: usize) -> Vec<String> {
    let typed = typed.to_ascii_lowercase();
    let typed_len = typed.chars().count();
    let allowed = match typed_len {
        0..=3 => 1,
        4..=7 => 2,
        _ => 3,
    };
    let mut found: Vec<(usize, String)> = names
        // Lengths further apart than `allowed` cannot be close enough;
        // skipping them keeps this fast over thousands of names.
        .filter(|name| name.chars().count().abs_diff(typed_len) <= allowed)
        .map(str::to_ascii_lowercase)
        .filter_map(|name| {
            let d = distance(&typed, &name);
            (d <= allowed).then_some((d, name))
        })
        .collect();
    found.sort();
    found.dedup_by(|a, b| a.1 == b.1);
    found.into_iter().take(limit).map(|(_, n)| n).collect()
}

/// Optimal string alignment distance.
pub fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // Rows i-2, i-1 and i of the usual table.
    let mut before: Vec<usize> = vec![0; b.len() + 1];
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for i in 1..=a.len() {
        let mut current = vec![i; b.len() + 1];
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (previous[j] + 1)
                .min(current[j - 1] + 1)
                .min(previous[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(before[j - 2] + 1);
            }
            current[j] = best;
        }
        before = std::mem::replace(&mut previous, current);
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances() {
        assert_eq!(distance("ssh", "ssh"), 0);
        assert_eq!(distance("shs", "ssh"), 1);
        assert_eq!(distance("postgres", "postgresql"), 2);
        assert_eq!(distance("", "abc"), 3);
        assert_eq!(distance("kitten", "sitting"), 3);
    }

    #[test]
    fn nearest_first_then_alphabetical_at_most_limit() {
        let names = ["postgresql", "postgres", "progress", "ssh", "Postgre"];
        assert_eq!(
            closest("postgresq", names.into_iter(), 3),
            vec!["postgres", "postgresql", "postgre"]
        );
        assert!(closest("zzzzzz", names.into_iter(), 3).is_empty());
    }
}
