//! Which folders an account archives: include/exclude patterns, `*` matching any characters,
//! case-insensitive, tried against the full name and its last segment ("Trash" excludes
//! "INBOX/Trash" too).

#[derive(Debug, Clone)]
pub struct FolderFilter {
    include: Vec<String>,
    exclude: Vec<String>,
}

impl FolderFilter {
    pub fn new(include: &[String], exclude: &[String]) -> Self {
        let lower = |v: &[String]| v.iter().map(|p| p.to_lowercase()).collect();
        Self {
            include: lower(include),
            exclude: lower(exclude),
        }
    }

    pub fn includes(&self, folder: &str) -> bool {
        self.includes_any(&[folder])
    }

    /// For a folder known by several names (decoded and as the server spells it): a pattern
    /// may name it either way, and an exclusion by any name wins.
    pub fn includes_any(&self, names: &[&str]) -> bool {
        let hit = hits(names);
        (self.include.is_empty() || self.include.iter().any(&hit)) && !self.exclude.iter().any(hit)
    }

    /// For a folder left out unless asked for (Microsoft 365's Deleted Items and Junk Email):
    /// whether an include pattern other than a bare `*` names it, and no exclusion does.
    pub fn names_explicitly(&self, names: &[&str]) -> bool {
        let hit = hits(names);
        self.include.iter().filter(|p| *p != "*").any(&hit) && !self.exclude.iter().any(hit)
    }
}

/// Whether a pattern matches any of a folder's names, whole or by its last segment.
fn hits(names: &[&str]) -> impl Fn(&String) -> bool {
    let spellings: Vec<(String, String)> = names
        .iter()
        .map(|n| {
            let full = n.to_lowercase();
            let leaf = full.rsplit(['/', '.']).next().unwrap_or(&full).to_string();
            (full, leaf)
        })
        .collect();
    move |p: &String| {
        spellings
            .iter()
            .any(|(full, leaf)| glob(p, full) || glob(p, leaf))
    }
}

/// `*` matches any run of characters; everything else matches itself.
fn glob(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let mut rest = text;
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            match rest.strip_prefix(part) {
                Some(r) => rest = r,
                None => return false,
            }
        } else if i == parts.len() - 1 {
            return rest.ends_with(part);
        } else {
            match rest.find(part) {
                Some(pos) => rest = &rest[pos + part.len()..],
                None => return false,
            }
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn default_excludes_trash_junk_and_spam_anywhere() {
        let f = FolderFilter::new(&[], &list(&["Trash", "Junk", "Spam"]));
        assert!(f.includes("INBOX"));
        assert!(f.includes("Archive/2024"));
        assert!(!f.includes("Trash"));
        assert!(!f.includes("INBOX/Junk"));
        assert!(!f.includes("spam"));
    }

    #[test]
    fn a_folder_left_out_by_default_needs_an_include_pattern_that_names_it() {
        let names = ["Gelöschte Elemente", "deleteditems"];
        assert!(!FolderFilter::new(&[], &[]).names_explicitly(&names));
        assert!(!FolderFilter::new(&list(&["*"]), &[]).names_explicitly(&names));
        assert!(FolderFilter::new(&list(&["Inbox", "DeletedItems"]), &[]).names_explicitly(&names));
        assert!(FolderFilter::new(&list(&["gelöschte*"]), &[]).names_explicitly(&names));
        assert!(
            !FolderFilter::new(&list(&["deleteditems"]), &list(&["Gelöschte*"]))
                .names_explicitly(&names)
        );
    }

    #[test]
    fn include_patterns_limit_the_folders() {
        let f = FolderFilter::new(&list(&["INBOX", "Archive*"]), &[]);
        assert!(f.includes("inbox"));
        assert!(f.includes("Archive/2024"));
        assert!(!f.includes("Sent"));
    }
}
