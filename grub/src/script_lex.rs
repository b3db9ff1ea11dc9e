//! A small lexer for GRUB script, enough to inspect grub.cfg: it splits a
//! line into statements at unquoted `;` and a statement into words, removing
//! quotes. Variable references (`${x}`, `$x`) stay as text.

/// Split `line` into statements at `;` outside quotes. A `#` at the start of
/// a word outside quotes starts a comment that runs to the end of the line.
pub fn statements(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut quote: Option<char> = None;
    let mut escaped = false;
    let mut at_word_start = true;
    for c in line.chars() {
        if escaped {
            current.push(c);
            escaped = false;
            at_word_start = false;
            continue;
        }
        match quote {
            Some(q) => {
                if c == q {
                    quote = None;
                } else if c == '\\' && q == '"' {
                    escaped = true;
                }
                current.push(c);
            }
            None => match c {
                '\\' => {
                    escaped = true;
                    current.push(c);
                }
                '\'' | '"' => {
                    quote = Some(c);
                    current.push(c);
                }
                ';' => {
                    out.push(std::mem::take(&mut current));
                    at_word_start = true;
                    continue;
                }
                '#' if at_word_start => break,
                _ => current.push(c),
            },
        }
        at_word_start = quote.is_none() && c.is_whitespace();
    }
    out.push(current);
    out.into_iter().map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect()
}

/// Split a statement into words, removing quotes and backslash escapes.
pub fn words(statement: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = statement.chars();
    while let Some(c) = chars.next() {
        match quote {
            Some('\'') if c == '\'' => quote = None,
            Some('"') if c == '"' => quote = None,
            Some('"') if c == '\\' => {
                if let Some(n) = chars.next() {
                    current.push(n);
                }
            }
            Some(_) => current.push(c),
            None => match c {
                '\'' | '"' => {
                    quote = Some(c);
                    in_word = true;
                }
                '\\' => {
                    if let Some(n) = chars.next() {
                        current.push(n);
                    }
                    in_word = true;
                }
                c if c.is_whitespace() => {
                    if in_word {
                        out.push(std::mem::take(&mut current));
                        in_word = false;
                    }
                }
                _ => {
                    current.push(c);
                    in_word = true;
                }
            },
        }
    }
    if in_word {
        out.push(current);
    }
    out
}

/// Quote `s` for GRUB script as grub-mkconfig's `grub_quote` does: in single
/// quotes, with each `'` written as `'\''`.
pub fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// A word as GRUB script needs it: bare when it only has characters that
/// are never special, otherwise [`quote`]d.
pub fn word(s: &str) -> String {
    let bare =
        !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_=./,:+@%".contains(c));
    if bare {
        s.to_string()
    } else {
        quote(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_one_line_if() {
        assert_eq!(
            statements("if [ x$grub_platform = xxen ]; then insmod xzio; insmod lzopio; fi"),
            vec!["if [ x$grub_platform = xxen ]", "then insmod xzio", "insmod lzopio", "fi"]
        );
    }

    #[test]
    fn keeps_quoted_semicolons_and_drops_comments() {
        assert_eq!(statements("echo 'a;b' # c; d"), vec!["echo 'a;b'"]);
        assert_eq!(statements("  # only a comment"), Vec::<String>::new());
        assert_eq!(statements("set x=a#b"), vec!["set x=a#b"]);
    }

    #[test]
    fn words_remove_quotes() {
        assert_eq!(words(r#"set default="${next_entry}""#), vec!["set", "default=${next_entry}"]);
        assert_eq!(
            words("menuentry 'Ubuntu, with Linux' --class os $menuentry_id_option 'id-1' {"),
            vec![
                "menuentry",
                "Ubuntu, with Linux",
                "--class",
                "os",
                "$menuentry_id_option",
                "id-1",
                "{"
            ]
        );
        assert_eq!(words(r"set next_entry="), vec!["set", "next_entry="]);
        assert_eq!(words(&quote("it's")), vec!["it's"]);
        assert_eq!(word("--fs-uuid"), "--fs-uuid");
        assert_eq!(word("a b"), "'a b'");
        assert_eq!(word(""), "''");
    }
}
