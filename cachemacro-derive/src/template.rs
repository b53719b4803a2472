//! Key templates: `"user:<id>"`, `"{tenant}:order:<order.id>"`.
//!
//! Grammar: literal text with placeholders `<path>` or `{path}`; a path is a parameter name
//! followed by any number of `.field` or `.0`. `<<`, `>>`, `{{` and `}}` write a literal
//! bracket; a lone `>` or `}` is literal too.

use std::fmt;

/// Characters that no key part ever writes (the runtime escapes them inside text, and no
/// encoding uses them as structure). Text between two placeholders that contains one of
/// them ends the first placeholder's value unambiguously.
const SEPARATORS: &[char] = &[':', '|', '{', '}', '<', '>', '*', '?', '\\', ' '];

/// Brackets that sequences and tuples write; a `,` separates two placeholders only when the
/// text around it has none of these (values write `,` inside brackets only).
const BRACKETS: &[char] = &['(', ')', '[', ']'];

/// One piece of a template.
#[derive(Debug, PartialEq)]
pub(crate) enum Piece {
    /// Literal text, unescaped.
    Text(String),
    /// A placeholder.
    Hole(Hole),
}

/// A placeholder: the parameter it reads and the fields it follows.
#[derive(Debug, PartialEq)]
pub(crate) struct Hole {
    /// As written, brackets included, for messages.
    pub(crate) written: String,
    pub(crate) root: String,
    pub(crate) fields: Vec<Field>,
}

#[derive(Debug, PartialEq)]
pub(crate) enum Field {
    Named(String),
    Index(u32),
}

impl fmt::Display for Hole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.written)
    }
}

/// Parses `template`; an `Err` is a message for the user.
pub(crate) fn parse(template: &str, what: &str) -> Result<Vec<Piece>, String> {
    let mut pieces = Vec::new();
    let mut text = String::new();
    let mut chars = template.char_indices().peekable();
    while let Some((start, c)) = chars.next() {
        let close = match c {
            '<' => '>',
            '{' => '}',
            '>' | '}' => {
                // `>>` and `}}` write one bracket; a lone closing bracket is literal.
                if chars.peek().map(|&(_, n)| n) == Some(c) {
                    chars.next();
                }
                text.push(c);
                continue;
            }
            _ => {
                text.push(c);
                continue;
            }
        };
        if chars.peek().map(|&(_, n)| n) == Some(c) {
            chars.next();
            text.push(c);
            continue;
        }
        let mut inner = String::new();
        let mut closed = false;
        for (_, n) in chars.by_ref() {
            if n == close {
                closed = true;
                break;
            }
            if n == '<' || n == '{' {
                return Err(format!(
                    "unterminated placeholder `{c}{inner}` in {what} \"{template}\": close it with `{close}` (write `{n}{n}` for a literal `{n}`)"
                ));
            }
            inner.push(n);
        }
        let written = format!(
            "{c}{inner}{}",
            if closed {
                close.to_string()
            } else {
                String::new()
            }
        );
        if !closed {
            return Err(format!(
                "unterminated placeholder `{written}` at byte {start} of {what} \"{template}\": close it with `{close}` (write `{c}{c}` for a literal `{c}`)"
            ));
        }
        if !text.is_empty() {
            pieces.push(Piece::Text(std::mem::take(&mut text)));
        }
        pieces.push(Piece::Hole(hole(&inner, written, template, what)?));
    }
    if !text.is_empty() {
        pieces.push(Piece::Text(text));
    }
    check_separated(&pieces, template, what)?;
    Ok(pieces)
}

fn hole(inner: &str, written: String, template: &str, what: &str) -> Result<Hole, String> {
    let path = inner.trim();
    if path.is_empty() {
        return Err(format!(
            "empty placeholder `{written}` in {what} \"{template}\": name a parameter, as in `<user_id>`"
        ));
    }
    let mut segments = path.split('.');
    let root = segments.next().unwrap_or_default();
    if !is_ident(root) {
        return Err(format!(
            "invalid placeholder `{written}` in {what} \"{template}\": write a parameter name, optionally followed by fields, as in `<user.id>`"
        ));
    }
    let mut fields = Vec::new();
    for segment in segments {
        if is_ident(segment) {
            fields.push(Field::Named(segment.to_owned()));
        } else if let Ok(index) = segment.parse::<u32>() {
            fields.push(Field::Index(index));
        } else {
            return Err(format!(
                "invalid field `{segment}` in placeholder `{written}` of {what} \"{template}\": write `.name` or `.0`"
            ));
        }
    }
    Ok(Hole {
        written,
        root: root.strip_prefix("r#").unwrap_or(root).to_owned(),
        fields,
    })
}

fn is_ident(s: &str) -> bool {
    let s = s.strip_prefix("r#").unwrap_or(s);
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c == '_' || c.is_alphabetic())
        && chars.all(|c| c == '_' || c.is_alphanumeric())
        && s != "_"
}

/// Two placeholders side by side (`<a><b>`, `<a>-<b>`) would let `("1", "23")` and
/// `("12", "3")` share a key; require a separator that values never write. `~` and `%`
/// don't count (an `Option` writes `~`, text writes `%XX`), nor do brackets.
fn check_separated(pieces: &[Piece], template: &str, what: &str) -> Result<(), String> {
    let mut previous: Option<&Hole> = None;
    for piece in pieces {
        match piece {
            Piece::Hole(hole) => {
                if let Some(prev) = previous {
                    return Err(format!(
                        "placeholders `{prev}` and `{hole}` in {what} \"{template}\" need a separator such as `:` between them, or two different argument lists could make the same key (`~`, `%` and brackets don't separate: values write them)"
                    ));
                }
                previous = Some(hole);
            }
            Piece::Text(text) => {
                let comma = text.contains(',') && !text.contains(BRACKETS);
                if comma || text.contains(SEPARATORS) {
                    previous = None;
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_key(t: &str) -> Result<Vec<Piece>, String> {
        parse(t, "key template")
    }

    fn holes(t: &str) -> Vec<String> {
        parse(t, "key template")
            .unwrap()
            .into_iter()
            .filter_map(|p| match p {
                Piece::Hole(h) => Some(h.root),
                Piece::Text(_) => None,
            })
            .collect()
    }

    #[test]
    fn both_bracket_styles_name_placeholders() {
        assert_eq!(holes("user:<id>:{name}"), ["id", "name"]);
    }

    #[test]
    fn doubled_brackets_are_literal() {
        assert_eq!(
            parse_key("a<<b>>{{c}}").unwrap(),
            vec![Piece::Text("a<b>{c}".into())]
        );
    }

    #[test]
    fn fields_are_parsed() {
        let pieces = parse_key("<req.tenant.0>").unwrap();
        let Piece::Hole(h) = &pieces[0] else { panic!() };
        assert_eq!(h.root, "req");
        assert_eq!(
            h.fields,
            vec![Field::Named("tenant".into()), Field::Index(0)]
        );
    }

    #[test]
    fn mistakes_are_errors() {
        assert!(parse_key("user:<>")
            .unwrap_err()
            .contains("empty placeholder"));
        assert!(parse_key("user:<id").unwrap_err().contains("unterminated"));
        assert!(parse_key("user:{id").unwrap_err().contains("unterminated"));
        assert!(parse_key("user:<a b>")
            .unwrap_err()
            .contains("invalid placeholder"));
        assert!(parse_key("<a><b>").unwrap_err().contains("separator"));
        assert!(parse_key("<a>-<b>").unwrap_err().contains("separator"));
        assert!(parse_key("<a>:<b>").is_ok());
        assert!(parse_key("<a>,<b>").is_ok());
        assert!(parse_key("<a>~<b>").unwrap_err().contains("separator"));
        assert!(parse_key("<a>%<b>").unwrap_err().contains("separator"));
        assert!(parse_key("<a>(,<b>").unwrap_err().contains("separator"));
        assert!(parse_key("<a>]<b>").unwrap_err().contains("separator"));
    }
}
