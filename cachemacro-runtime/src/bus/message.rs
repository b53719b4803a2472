//! The messages of the bus, and their text on the wire (see the [bus](super) for the
//! format).

/// The format's version, first on every message.
const VERSION: &str = "cm1";

/// An invalidation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Message {
    /// Drop one storage key.
    Remove(String),
    /// Drop every entry.
    Clear,
    /// Drop every entry whose storage key starts with this prefix.
    ClearPrefix(String),
    /// A group version was bumped.
    Version { group: String, version: u64 },
    /// A tag was invalidated: drop the entries registered under it in memory only (those
    /// loaded while Redis could not be reached).
    Tag(String),
    /// A key was loaded for the fleet (or its loader gave up): the instances waiting for
    /// it look again.
    Filled(String),
}

impl Message {
    pub(crate) fn encode(&self, instance: u64) -> String {
        match self {
            Message::Remove(key) => format!("{VERSION} {instance:016x} del {key}"),
            Message::Clear => format!("{VERSION} {instance:016x} clr"),
            Message::ClearPrefix(prefix) => format!("{VERSION} {instance:016x} pfx {prefix}"),
            Message::Version { group, version } => {
                format!("{VERSION} {instance:016x} ver {version} {group}")
            }
            Message::Tag(tag) => format!("{VERSION} {instance:016x} tag {tag}"),
            Message::Filled(key) => format!("{VERSION} {instance:016x} fil {key}"),
        }
    }

    /// The sender and the message; `None` for anything this version does not understand.
    pub(crate) fn decode(payload: &[u8]) -> Option<(u64, Message)> {
        let text = std::str::from_utf8(payload).ok()?;
        let mut parts = text.splitn(4, ' ');
        if parts.next()? != VERSION {
            return None;
        }
        let instance = u64::from_str_radix(parts.next()?, 16).ok()?;
        let message = match (parts.next()?, parts.next()) {
            ("del", Some(key)) => Message::Remove(key.to_owned()),
            ("clr", None) => Message::Clear,
            ("pfx", Some(prefix)) => Message::ClearPrefix(prefix.to_owned()),
            ("tag", Some(tag)) => Message::Tag(tag.to_owned()),
            ("fil", Some(key)) => Message::Filled(key.to_owned()),
            ("ver", Some(rest)) => {
                let (version, group) = rest.split_once(' ')?;
                Message::Version {
                    group: group.to_owned(),
                    version: version.parse().ok()?,
                }
            }
            _ => return None,
        };
        Some((instance, message))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip() {
        for m in [
            Message::Remove("ns:c1:k:user:1 with space".into()),
            Message::Clear,
            Message::ClearPrefix("ns:c1:s:users:".into()),
            Message::Version {
                group: "catalog v2".into(),
                version: 1_764_000_000_000,
            },
            Message::Tag("user:42 and more".into()),
            Message::Filled("ns:c1:k:user:1".into()),
        ] {
            assert_eq!(
                Message::decode(m.encode(0xabc).as_bytes()),
                Some((0xabc, m))
            );
        }
    }

    #[test]
    fn unknown_versions_and_kinds_are_ignored() {
        assert_eq!(Message::decode(b"cm2 0000000000000001 del k"), None);
        assert_eq!(Message::decode(b"cm1 0000000000000001 zap k"), None);
        assert_eq!(Message::decode(b"cm1 zz del k"), None);
        assert_eq!(Message::decode(&[0xff, 0xfe]), None);
    }
}
