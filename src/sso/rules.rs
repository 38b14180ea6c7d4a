//! Who may enter through a provider, and what they get: the provider's
//! `allowed_email_domains`, `allowed_groups` and `admin_groups`, checked
//! against what the provider says at every sign-in and every refresh.

use serde_json::{Map, Value};

use crate::config::AccessRules;

/// What the provider says about the user that the rules look at.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    pub email: Option<String>,
    pub email_verified: Option<bool>,
    pub groups: Vec<String>,
}

/// What the rules give a user they admit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    /// `Some` when `admin_groups` is set: whether the user is an administrator.
    pub is_admin: Option<bool>,
}

/// Whether any rule needs to see the provider's claims.
pub fn active(rules: &AccessRules) -> bool {
    !rules.allowed_email_domains.is_empty() || !rules.allowed_groups.is_empty() || !rules.admin_groups.is_empty()
}

/// Applies `rules` to `facts`: the verdict, or the refusal naming the rule.
pub fn check(rules: &AccessRules, facts: &Facts) -> Result<Verdict, String> {
    if !rules.allowed_email_domains.is_empty() {
        let rule = "allowed_email_domains";
        let Some(email) = facts.email.as_deref() else {
            return Err(format!("{rule}: the provider gave no e-mail address"));
        };
        if facts.email_verified != Some(true) {
            return Err(format!("{rule}: the e-mail address {email:?} is not verified at the provider"));
        }
        let domain = email.rsplit_once('@').map(|(_, d)| d.to_ascii_lowercase()).unwrap_or_default();
        if !rules.allowed_email_domains.contains(&domain) {
            return Err(format!("{rule}: e-mail addresses at {domain:?} may not sign in here"));
        }
    }
    if !rules.allowed_groups.is_empty() && !rules.allowed_groups.iter().any(|g| facts.groups.contains(g)) {
        return Err(format!("allowed_groups: you are in none of the groups allowed to sign in here ({})", rules.groups_claim));
    }
    let is_admin = (!rules.admin_groups.is_empty()).then(|| rules.admin_groups.iter().any(|g| facts.groups.contains(g)));
    Ok(Verdict { is_admin })
}

/// The groups in claim `name` of `claims`: a list of strings or one string.
/// A dotted name (`realm_access.roles`) is followed into nested objects when
/// no claim has the whole name.
pub fn groups(claims: &Map<String, Value>, name: &str) -> Vec<String> {
    let value = claims.get(name).or_else(|| {
        let mut parts = name.split('.');
        let first = claims.get(parts.next()?)?;
        parts.try_fold(first, |v, part| v.get(part))
    });
    match value {
        Some(Value::Array(items)) => items.iter().filter_map(|v| v.as_str().map(str::to_string)).collect(),
        Some(Value::String(one)) => vec![one.clone()],
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> AccessRules {
        AccessRules {
            allowed_email_domains: vec!["example.com".into()],
            allowed_groups: vec!["staff".into()],
            admin_groups: vec!["ops".into()],
            ..AccessRules::default()
        }
    }

    fn facts(email: &str, verified: bool, groups: &[&str]) -> Facts {
        Facts {
            email: Some(email.into()),
            email_verified: Some(verified),
            groups: groups.iter().map(|g| g.to_string()).collect(),
        }
    }

    #[test]
    fn domains_exact_and_without_case() {
        let r = rules();
        assert!(check(&r, &facts("a@example.com", true, &["staff"])).is_ok());
        assert!(check(&r, &facts("a@EXAMPLE.Com", true, &["staff"])).is_ok());
        let sub = check(&r, &facts("a@a.example.com", true, &["staff"])).unwrap_err();
        assert!(sub.starts_with("allowed_email_domains"), "{sub}");
        assert!(check(&r, &facts("a@example.com.evil", true, &["staff"])).is_err());
        let unverified = check(&r, &facts("a@example.com", false, &["staff"])).unwrap_err();
        assert!(unverified.contains("not verified"), "{unverified}");
        assert!(check(&r, &Facts { email: None, ..facts("", true, &["staff"]) }).is_err());
    }

    #[test]
    fn groups_allow_and_make_admins() {
        let r = rules();
        let no_group = check(&r, &facts("a@example.com", true, &["other"])).unwrap_err();
        assert!(no_group.starts_with("allowed_groups"), "{no_group}");
        assert_eq!(check(&r, &facts("a@example.com", true, &["staff"])).unwrap().is_admin, Some(false));
        assert_eq!(check(&r, &facts("a@example.com", true, &["staff", "ops"])).unwrap().is_admin, Some(true));
        assert_eq!(check(&AccessRules::default(), &Facts::default()).unwrap().is_admin, None);
    }

    #[test]
    fn group_claims() {
        let claims: Map<String, Value> =
            serde_json::from_str(r#"{"groups": ["a", "b", 3], "one": "x", "realm_access": {"roles": ["r"]}}"#).unwrap();
        assert_eq!(groups(&claims, "groups"), ["a", "b"]);
        assert_eq!(groups(&claims, "one"), ["x"]);
        assert_eq!(groups(&claims, "realm_access.roles"), ["r"]);
        assert!(groups(&claims, "missing").is_empty());
    }
}
