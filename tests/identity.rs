//! Identity against a real, throwaway OpenLDAP `slapd` on a loopback port
//! (`common/slapd.rs`): password login, lookup, both group styles and
//! memberOf, filter escaping, disabled users, a directory that stops or
//! hangs (fail closed), StartTLS and LDAPS against a test CA, the lookup
//! cache, and access rules over the principals the directory returns.

mod common;
#[path = "common/slapd.rs"]
mod slapd;

use std::time::{Duration, Instant};

use dockmaster::access::{self, AccessConfig, Decision};
use dockmaster::error::Error;
use dockmaster::identity::{Directory, LdapConfig, Principal};
use slapd::{Slapd, ADMIN_PASSWORD, GROUPS, PEOPLE, USER_PASSWORD};

/// The directory's standard configuration plus `extra` keys.
fn config(slapd: &Slapd, extra: &str) -> LdapConfig {
    config_at(slapd, &slapd.url(), extra)
}

fn config_at(slapd: &Slapd, url: &str, extra: &str) -> LdapConfig {
    let yaml = format!("{}{extra}", slapd.ldap_yaml_with_url(url));
    serde_yaml::from_str(&yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}"))
}

fn directory(slapd: &Slapd, extra: &str) -> Directory {
    Directory::new(config(slapd, extra)).expect("a valid configuration")
}

fn denied<T: std::fmt::Debug>(result: Result<T, Error>) -> String {
    match result {
        Err(e @ Error::Denied(_)) => {
            assert_eq!(e.exit_code(), 4);
            e.to_string()
        }
        other => panic!("expected a denial (exit 4), got {other:?}"),
    }
}

fn unreachable<T: std::fmt::Debug>(result: Result<T, Error>) -> String {
    match result {
        Err(e @ Error::Unreachable(_)) => {
            assert_eq!(e.exit_code(), 5);
            e.to_string()
        }
        other => panic!("expected 'directory unreachable' (exit 5), got {other:?}"),
    }
}

#[tokio::test]
async fn password_login_binds_as_the_user_and_wrong_passwords_and_unknown_users_look_alike() {
    let Some(slapd) = Slapd::start() else { return };
    let directory = directory(&slapd, "");

    let alice = directory.authenticate("alice", USER_PASSWORD).await.expect("the right password logs in");
    assert_eq!(alice.uid, "alice");
    assert_eq!(alice.dn, format!("uid=alice,{PEOPLE}"));
    assert_eq!(alice.display_name.as_deref(), Some("Alice Archer"));
    assert_eq!(alice.mail.as_deref(), Some("alice@example.org"));
    assert_eq!(alice.groups, ["deployers", "ops"]);

    let wrong = denied(directory.authenticate("alice", "not-her-password").await);
    let unknown = denied(directory.authenticate("mallory", USER_PASSWORD).await);
    assert_eq!(wrong, "login failed for `alice`: wrong user name or password");
    assert_eq!(unknown.replace("mallory", "alice"), wrong, "a guesser cannot tell the two apart");
    // The directory compares names without case; the principal carries
    // the directory's spelling, so access rules see one name.
    assert_eq!(directory.authenticate("ALICE", USER_PASSWORD).await.expect("case-insensitive").uid, "alice");
    // Another user's password is not this user's password.
    denied(directory.authenticate("bob", "not-bobs-password").await);
}

#[tokio::test]
async fn an_empty_password_is_refused_before_any_bind_even_where_the_directory_would_accept_it() {
    // This directory answers an empty simple bind with success and an
    // anonymous session.
    let Some(slapd) = Slapd::builder().global("allow bind_anon_dn").start() else { return };
    let directory = directory(&slapd, "");

    // Proof that the danger is real here: ldap3 sends the empty password
    // as is, and this slapd says rc 0.
    let (conn, mut ldap) = ldap3::LdapConnAsync::new(&slapd.url()).await.unwrap();
    ldap3::drive!(conn);
    let raw = ldap.simple_bind(&format!("uid=alice,{PEOPLE}"), "").await.unwrap();
    assert_eq!(raw.rc, 0, "this slapd accepts an empty bind: {raw:?}");
    let _ = ldap.unbind().await;

    let message = denied(directory.authenticate("alice", "").await);
    assert!(message.contains("empty password"), "{message}");
    // Refused before anything is sent: even with the directory gone the
    // answer is the same denial, not "unreachable".
    let mut slapd = slapd;
    slapd.stop();
    let message = denied(directory.authenticate("alice", "").await);
    assert!(message.contains("empty password"), "{message}");
}

#[tokio::test]
async fn groups_of_every_style_are_found_and_reported_by_name() {
    let Some(slapd) = Slapd::start() else { return };

    // By default every membership style is searched: groupOfNames/member,
    // groupOfUniqueNames/uniqueMember and posixGroup/memberUid.
    let all = directory(&slapd, "");
    let alice = all.lookup("alice").await.unwrap();
    assert_eq!(alice.groups, ["deployers", "ops"], "groupOfNames and posixGroup");
    assert_eq!(alice.group_dns, [format!("cn=deployers,{GROUPS}"), format!("cn=ops,{GROUPS}")]);
    let bob = all.lookup("bob").await.unwrap();
    assert_eq!(bob.groups, ["ops", "reviewers"], "posixGroup and groupOfUniqueNames; nothing outside roleBaseDn");

    // One configured style at a time.
    let posix = directory(&slapd, "roleObjectClass: posixGroup\nroleMemberAttribute: memberUid\n");
    assert_eq!(posix.lookup("alice").await.unwrap().groups, ["ops"]);
    let names = directory(&slapd, "roleObjectClass: groupOfNames\nroleMemberAttribute: member\n");
    assert_eq!(names.lookup("alice").await.unwrap().groups, ["deployers"]);
    let unique = directory(&slapd, "roleObjectClass: groupOfUniqueNames\nroleMemberAttribute: uniqueMember\n");
    assert_eq!(unique.lookup("bob").await.unwrap().groups, ["reviewers"]);
    // Rundeck's split: DN members plus uid members.
    let rundeck = directory(&slapd, "roleMemberAttribute: member\nroleUsernameMemberAttribute: memberUid\n");
    assert_eq!(rundeck.lookup("alice").await.unwrap().groups, ["deployers", "ops"]);

    // Nested: `staff` contains the group `deployers`.
    let nested = directory(&slapd, "nestedGroups: true\n");
    let alice = nested.lookup("alice").await.unwrap();
    assert_eq!(alice.groups, ["deployers", "ops", "staff"]);

    // Active Directory style: `memberOf` on the user entry. Under
    // roleBaseDn only: bob's `cn=deployers,ou=elsewhere` does not count.
    let member_of = directory(&slapd, "memberOfAttribute: memberOf\nroleObjectClass: posixGroup\n");
    assert_eq!(member_of.lookup("alice").await.unwrap().groups, ["deployers", "ops"]);
    assert_eq!(member_of.lookup("bob").await.unwrap().groups, ["ops"], "a group outside roleBaseDn is ignored");
    // Without roleBaseDn, memberOf is all there is, and a same-named group
    // elsewhere in the tree shows up with its own DN.
    let mut only_member_of = config(&slapd, "memberOfAttribute: memberOf\n");
    only_member_of.role_base_dn = None;
    let bob = Directory::new(only_member_of).unwrap().lookup("bob").await.unwrap();
    assert_eq!(bob.groups, ["deployers"]);
    assert_eq!(bob.group_dns, [format!("cn=deployers,ou=elsewhere,{}", slapd::BASE)]);
}

#[tokio::test]
async fn filter_metacharacters_in_user_names_are_escaped() {
    let Some(slapd) = Slapd::start() else { return };
    let directory = directory(&slapd, "");

    // `carol*(x)` is a literal name: escaped, it finds exactly that entry
    // (unescaped it would be a broken filter, or a wildcard).
    let carol = directory.lookup("carol*(x)").await.expect("the literal uid is found");
    assert_eq!(carol.display_name.as_deref(), Some("Carol Star"));
    assert_eq!(carol.groups, ["starred"], "and her groups are searched with her name escaped too");
    let carol = directory.authenticate("carol*(x)", USER_PASSWORD).await.expect("she can log in");
    assert_eq!(carol.uid, "carol*(x)");
    assert_eq!(directory.lookup("carol2").await.unwrap().groups, ["qa"]);

    // Wildcards and injections match nobody, by lookup or by login.
    for name in ["carol*", "*", "carol*(x", "*)(uid=*", "alice)(|(uid=*", "*)(objectClass=*", "alice\\2a"] {
        let message = denied(directory.lookup(name).await);
        assert!(message.contains("not in the directory"), "{name}: {message}");
        let message = denied(directory.authenticate(name, USER_PASSWORD).await);
        assert!(message.contains("wrong user name or password"), "{name}: {message}");
    }
}

#[tokio::test]
async fn a_disabled_user_is_refused_and_an_unknown_user_is_reported_as_such_by_lookup() {
    let Some(slapd) = Slapd::start() else { return };
    let directory = directory(&slapd, "");

    let message = denied(directory.lookup("dave").await);
    assert!(message.contains("`dave` is not in the directory, or is disabled"), "{message}");
    let message = denied(directory.authenticate("dave", USER_PASSWORD).await);
    assert!(message.contains("wrong user name or password"), "{message}");
    let message = denied(directory.lookup("mallory").await);
    assert!(message.contains("`mallory` is not in the directory"), "{message}");

    // The filter is what refuses dave: without it, he is found.
    let mut no_filter = config(&slapd, "");
    no_filter.user_filter = None;
    let dave = Directory::new(no_filter).unwrap().lookup("dave").await.expect("found without userFilter");
    assert_eq!(dave.groups, ["deployers"]);
}

#[tokio::test]
async fn a_directory_stopped_mid_run_fails_closed() {
    let Some(mut slapd) = Slapd::start() else { return };
    let uncached = directory(&slapd, "cacheDurationMillis: 0\n");
    let cached = directory(&slapd, "");
    uncached.lookup("alice").await.expect("before the stop");
    cached.authenticate("alice", USER_PASSWORD).await.expect("before the stop");

    slapd.stop();
    let message = unreachable(uncached.lookup("alice").await);
    assert!(message.contains("unreachable") && message.contains("access is denied"), "{message}");
    unreachable(uncached.authenticate("alice", USER_PASSWORD).await);
    // A password is checked by the directory every time: a cached entry
    // does not let anyone in while it is down.
    unreachable(cached.authenticate("alice", USER_PASSWORD).await);
    unreachable(cached.authenticate("alice", "wrong").await);
    // A lookup is answered from the cache for cacheDurationMillis, as
    // documented; someone never looked up is not.
    assert_eq!(cached.lookup("alice").await.expect("cached").groups, ["deployers", "ops"]);
    unreachable(cached.lookup("bob").await);
}

#[tokio::test]
async fn a_hung_directory_fails_closed_within_the_timeout() {
    let Some(slapd) = Slapd::start() else { return };
    let directory = Directory::new({
        let mut c = config(&slapd, "cacheDurationMillis: 0\n");
        c.timeout_read = 400;
        c
    })
    .unwrap();
    directory.lookup("alice").await.expect("before it hangs");

    slapd.pause();
    let started = Instant::now();
    let message = unreachable(directory.lookup("alice").await);
    let waited = started.elapsed();
    let auth = directory.authenticate("alice", USER_PASSWORD).await;
    slapd.resume();
    assert!(message.contains("no answer within 400 ms (timeoutRead)"), "{message}");
    assert!(waited < Duration::from_secs(5), "gave up after {waited:?}");
    unreachable(auth);
    directory.lookup("alice").await.expect("answers again once it is back");
}

#[tokio::test]
async fn starttls_and_ldaps_verify_the_directory_against_the_configured_ca() {
    let Some(slapd) = Slapd::builder().tls().start() else { return };
    let ca = slapd.ca_file.clone().unwrap();
    let with = |url: &str, extra: &str| Directory::new(config_at(&slapd, url, extra));

    // StartTLS on the plain port, by IP address and by name (both in the
    // certificate), and LDAPS.
    let start_tls = format!("startTls: true\ncaFile: {}\n", ca.display());
    for url in [slapd.url(), format!("ldap://localhost:{}", slapd.port)] {
        let directory = with(&url, &start_tls).unwrap();
        assert_eq!(directory.lookup("alice").await.unwrap().groups, ["deployers", "ops"], "{url}");
        directory.authenticate("alice", USER_PASSWORD).await.unwrap_or_else(|e| panic!("{url}: {e}"));
        denied(directory.authenticate("alice", "wrong").await);
    }
    let ldaps = with(&slapd.ldaps_url(), &format!("caFile: {}\n", ca.display())).unwrap();
    ldaps.authenticate("alice", USER_PASSWORD).await.expect("ldaps");

    // A CA that did not sign the directory's certificate: refused, before
    // the service password is sent.
    let wrong_ca = slapd::make_ca(slapd.dir(), "other-ca", "some other CA");
    for directory in [
        with(&slapd.url(), &format!("startTls: true\ncaFile: {}\n", wrong_ca.display())).unwrap(),
        with(&slapd.ldaps_url(), &format!("caFile: {}\n", wrong_ca.display())).unwrap(),
        // The system trust store does not know the test CA either.
        with(&slapd.url(), "startTls: true\n").unwrap(),
    ] {
        let message = unreachable(directory.lookup("alice").await);
        assert!(message.contains("TLS") && message.contains("certificate"), "{message}");
        unreachable(directory.authenticate("alice", USER_PASSWORD).await);
    }

    // A caFile that is not a certificate is a configuration error.
    let junk = slapd.dir().join("junk.pem");
    std::fs::write(&junk, "not a certificate\n").unwrap();
    match with(&slapd.url(), &format!("startTls: true\ncaFile: {}\n", junk.display())) {
        Err(e @ Error::Usage(_)) => assert!(e.to_string().starts_with("ldap.caFile:"), "{e}"),
        other => panic!("expected a configuration error, got {other:?}"),
    }
}

#[tokio::test]
async fn lookups_are_cached_for_the_configured_time_and_passwords_never_are() {
    let Some(slapd) = Slapd::start() else { return };
    const CACHE: Duration = Duration::from_millis(1500);
    let directory = directory(&slapd, &format!("cacheDurationMillis: {}\n", CACHE.as_millis()));

    let first = Instant::now();
    assert_eq!(directory.lookup("bob").await.unwrap().groups, ["ops", "reviewers"]);
    slapd.modify(&format!("dn: cn=deployers,{GROUPS}\nchangetype: modify\nadd: member\nmember: uid=bob,{PEOPLE}\n"));
    let again = directory.lookup("bob").await.unwrap();
    if first.elapsed() < CACHE {
        assert_eq!(again.groups, ["ops", "reviewers"], "within the cache time, the cached answer");
    }
    std::thread::sleep(CACHE.saturating_sub(first.elapsed()) + Duration::from_millis(100));
    assert_eq!(directory.lookup("bob").await.unwrap().groups, ["deployers", "ops", "reviewers"], "after it");

    // A cached entry never stands in for the password check.
    directory.authenticate("bob", USER_PASSWORD).await.expect("right password");
    denied(directory.authenticate("bob", "wrong").await);
    denied(directory.authenticate("bob", "").await);
    directory.authenticate("bob", USER_PASSWORD).await.expect("right password again");
    // A failed lookup is not cached: a user added now is found at once.
    denied(directory.lookup("erin").await);
    slapd.modify(&format!(
        "dn: uid=erin,{PEOPLE}\nchangetype: add\nobjectClass: inetOrgPerson\nuid: erin\ncn: Erin\nsn: Erin\n"
    ));
    assert_eq!(directory.lookup("erin").await.expect("found at once").uid, "erin");
}

#[tokio::test]
async fn access_rules_decide_on_the_principals_the_directory_returns() {
    let Some(slapd) = Slapd::start() else { return };
    let directory = directory(&slapd, "nestedGroups: true\n");
    let rules: AccessConfig = serde_yaml::from_str(&format!(
        "rules:
  - groups: [\"cn=deployers,{GROUPS}\"]
    actions: [deploy, plan, status, rollback]
    descriptors: [\"TLO GE/*\"]
    environments: [dev, qa]
  - groups: [staff]
    actions: [status, history]
    descriptors: [\"**\"]
  - effect: deny
    groups: [ops]
    actions: [down]
    descriptors: [\"**\"]
"
    ))
    .unwrap();
    let alice: Principal = directory.lookup("alice").await.unwrap();
    assert_eq!(access::authorize(&rules, &alice, "deploy", "TLO GE/Milestone", "dev"), Decision::Allow { rule: 0 });
    assert_eq!(access::authorize(&rules, &alice, "history", "Other/App", "prod"), Decision::Allow { rule: 1 });
    assert_eq!(
        access::allowed_actions(&rules, &alice, "TLO GE/Milestone", "qa"),
        ["deploy", "plan", "status", "rollback", "history"]
    );
    // bob is in a group named `deployers`, but not the one the rule names
    // by DN (it is under ou=elsewhere), so nothing is allowed.
    let mut elsewhere = config(&slapd, "memberOfAttribute: memberOf\n");
    elsewhere.role_base_dn = None;
    let bob = Directory::new(elsewhere).unwrap().lookup("bob").await.unwrap();
    assert_eq!(bob.groups, ["deployers"]);
    let Decision::Deny { reason } = access::authorize(&rules, &bob, "deploy", "TLO GE/Milestone", "dev") else {
        panic!("bob's `deployers` is another group")
    };
    assert!(reason.contains("no access rule allows `deploy` on `TLO GE/Milestone` in `dev` for bob"), "{reason}");
    let Decision::Deny { reason } = access::authorize(&rules, &alice, "down", "TLO GE/Milestone", "dev") else {
        panic!("deny wins")
    };
    assert!(reason.starts_with("access.rules[2] denies `down`"), "{reason}");
}

#[test]
fn the_rundeck_step_denies_unknown_users_and_users_without_the_right_group_and_allows_the_rest() {
    let Some(run) = common::TestRun::start("rd-ldap") else { return };
    let Some(slapd) = Slapd::start() else { return };
    run.add_config(&format!(
        "{}access:\n  rules:\n    - groups: [deployers]\n      actions: [deploy, plan, status, approve]\n      descriptors: [\"**\"]\n",
        slapd.config_section()
    ));
    let file = run.compose(&format!(
        "services:\n  app:\n    image: {}\n    command: [\"sleep\", \"1000\"]\n",
        common::FIXTURE_IMAGE
    ));
    let step = |user: &str| {
        run.dockmaster_with_env(
            ["rundeck"],
            &[("RD_JOB_USERNAME", user), ("RD_JOB_EXECID", "1"), ("RD_CONFIG_DESCRIPTOR", file.as_str())],
        )
    };
    let denied = step("mallory");
    denied.assert_exit(4);
    denied.check(denied.stderr.contains("mallory") && denied.stderr.contains("not in the directory"), "says why");
    denied.check(common::containers_with_label(&run.label()).is_empty(), "nothing was deployed");
    let disabled = step("dave");
    disabled.assert_exit(4);
    disabled.check(common::containers_with_label(&run.label()).is_empty(), "nothing was deployed for dave");
    let no_group = step("bob");
    no_group.assert_exit(4);
    no_group.check(
        no_group.stderr.contains("no access rule allows `deploy`") && no_group.stderr.contains("ops"),
        "a user without the right group is denied, with the groups named",
    );
    no_group.check(common::containers_with_label(&run.label()).is_empty(), "nothing was deployed for bob");
    // With access rules in force the CLI must log in, not deploy unchecked.
    let cli = run.dockmaster(["deploy", file.as_str()]);
    cli.assert_exit(4);
    let wrong = run.dockmaster_with_env(["--user", "alice", "plan", file.as_str()], &[("DOCKMASTER_PASSWORD", "nope")]);
    wrong.assert_exit(4);
    wrong.check(wrong.stderr.contains("wrong user name or password"), "a wrong password is refused");
    let login =
        run.dockmaster_with_env(["--user", "alice", "plan", file.as_str()], &[("DOCKMASTER_PASSWORD", USER_PASSWORD)]);
    login.assert_exit(0);
    login.check(!login.stdout.contains(USER_PASSWORD) && !login.stderr.contains(USER_PASSWORD), "no password echoed");
    let allowed = step("alice");
    allowed.assert_exit(0);
    allowed.check(allowed.stdout.contains("alice") && allowed.stdout.contains("deployers, ops"), "names the user");
    allowed.check(!allowed.stdout.contains(ADMIN_PASSWORD) && !allowed.stderr.contains(ADMIN_PASSWORD), "no secret");
}
