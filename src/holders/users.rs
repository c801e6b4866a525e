//! User names from /etc/passwd, when it can be read. Minimal containers
//! have none; then users show as numbers.

use std::collections::HashMap;
use std::io;
use std::path::Path;

/// User names by uid.
pub struct UserNames {
    names: HashMap<u32, String>,
}

impl UserNames {
    /// No names: every user shows as a number.
    pub fn none() -> UserNames {
        UserNames {
            names: HashMap::new(),
        }
    }

    /// The names of a passwd file; none when it cannot be read, is not
    /// a regular file, or is larger than 16 MiB.
    pub fn load(path: &str) -> UserNames {
        let text = read_passwd(path.as_ref()).unwrap_or_default();
        UserNames {
            names: parse_passwd(&text),
        }
    }

    /// The uid of the user `name`; None when the file has no entry for it.
    pub fn uid(&self, name: &str) -> Option<u32> {
        self.names
            .iter()
            .filter(|(_, n)| *n == name)
            .map(|(uid, _)| *uid)
            .min()
    }

    /// The name of `uid`; None when the file has no entry for it.
    pub fn name(&self, uid: u32) -> Option<&str> {
        self.names.get(&uid).map(String::as_str)
    }
}

/// A passwd file's text, read the way lsport reads every table: without
/// blocking on a fifo, refusing a device or anything larger than 16 MiB
/// (see [`crate::files`]). Bytes that are not UTF-8 are replaced.
pub fn read_passwd(path: &Path) -> io::Result<String> {
    let bytes = crate::files::read_bounded(path, crate::files::TABLE_FILE_LIMIT)?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// `name:password:uid:...` per line; malformed lines are skipped. The
/// first name for a uid wins, as getpwuid does.
pub fn parse_passwd(text: &str) -> HashMap<u32, String> {
    let mut names = HashMap::new();
    for line in text.lines() {
        let mut fields = line.split(':');
        let (Some(name), Some(_), Some(uid)) = (fields.next(), fields.next(), fields.next()) else {
            continue;
        };
        if name.is_empty() || name.starts_with('#') {
            continue;
        }
        if let Ok(uid) = uid.parse() {
            names.entry(uid).or_insert_with(|| name.to_string());
        }
    }
    names
}

/// A passwd entry: the name, the uid and the primary gid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Account {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

/// The first entry of a passwd file named `user`, or, for a number, the
/// first with that uid.
pub(crate) fn find_account(text: &str, user: &str) -> Option<Account> {
    let number: Option<u32> = user.parse().ok();
    text.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        let uid: u32 = fields.nth(1)?.parse().ok()?;
        let gid: u32 = fields.next()?.parse().ok()?;
        let wanted = if number.is_some() {
            number == Some(uid)
        } else {
            name == user
        };
        (wanted && !name.is_empty() && !name.starts_with('#')).then(|| Account {
            name: name.to_string(),
            uid,
            gid,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_passwd_and_skips_bad_lines() {
        let names = parse_passwd(
            "root:x:0:0:root:/root:/bin/bash\nbroken\nnobody:x:65534:65534::/:/bin/false\ntoor:x:0:0::/:/bin/sh\n",
        );
        assert_eq!(names.get(&0).map(String::as_str), Some("root"));
        assert_eq!(names.get(&65534).map(String::as_str), Some("nobody"));
        assert_eq!(names.len(), 2);
    }

    #[test]
    fn finds_an_account_by_name_or_uid() {
        let text = "root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65533::/:/bin/false\n";
        let by_name = find_account(text, "nobody").unwrap();
        assert_eq!((by_name.uid, by_name.gid), (65534, 65533));
        assert_eq!(find_account(text, "65534"), Some(by_name));
        assert_eq!(find_account(text, "no-such-user"), None);
        assert_eq!(find_account(text, "1000"), None);
    }
}
