//! Unit tests of the policy checks: each protection, its legitimate
//! counterpart and the attack it refuses.
use super::*;

#[test]
fn image_names_normalise_as_the_engine_reads_them() {
    assert_eq!(full_name("mysql"), "docker.io/library/mysql");
    assert_eq!(full_name("mysql:8"), "docker.io/library/mysql");
    assert_eq!(full_name("team/app:1@sha256:ab"), "docker.io/team/app");
    assert_eq!(full_name("registry.example.com:5000/team/app:1"), "registry.example.com:5000/team/app");
    assert_eq!(full_name("localhost/app"), "localhost/app");
}

fn stack(text: &str) -> Stack {
    crate::descriptor::compose::test_stack(text, "p")
}

fn config(yaml: &str) -> PolicyConfig {
    let config: PolicyConfig = serde_yaml::from_str(yaml).unwrap();
    config.validate().unwrap();
    config
}

/// Each violation as `service|key|rule|message`.
fn found(config: &PolicyConfig, text: &str) -> Vec<String> {
    check(config, &stack(text), "x", "default")
        .into_iter()
        .map(|v| format!("{}|{}|{}|{}", v.service, v.key, v.rule, v.message))
        .collect()
}

/// A folder with `allowed/data` (the root and a folder in it) and two
/// links in the root: `escape` to `/` and `dangling` to nowhere.
fn roots_folder() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("allowed");
    std::fs::create_dir_all(root.join("data")).unwrap();
    std::os::unix::fs::symlink("/", root.join("escape")).unwrap();
    std::os::unix::fs::symlink(dir.path().join("nowhere/at/all"), root.join("dangling")).unwrap();
    (dir, root)
}

#[test]
fn bind_roots_see_through_symbolic_links() {
    let (_dir, root) = roots_folder();
    let roots = vec![root.clone()];
    assert!(under_any(&root.join("data"), &roots));
    assert!(under_any(&root.join("data/not/yet/made"), &roots));
    assert!(under_any(&root, &roots));
    assert!(!under_any(&root.join("escape"), &roots));
    assert!(!under_any(&root.join("escape/etc"), &roots));
    // Not there yet, below a link in an existing parent.
    assert!(!under_any(&root.join("escape/not/yet/made"), &roots));
    assert!(!under_any(&root.join("dangling"), &roots));
    assert!(!under_any(&root.join("dangling/x"), &roots));
    // A root given through a link is the folder it points at.
    let linked = vec![root.join("escape/tmp")];
    let real_tmp = std::fs::canonicalize("/tmp").unwrap();
    assert!(under_any(&real_tmp.join("x"), &linked));

    let rule = config(&format!("rules: [{{name: host-paths, bind_roots: ['{}']}}]", root.display()));
    let mount = |source: &str| format!("services:\n  web:\n    image: app:1\n    volumes: ['{source}:/data']\n");
    assert!(found(&rule, &mount(&root.join("data").display().to_string())).is_empty());
    let refused = found(&rule, &mount(&root.join("escape").display().to_string()));
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert!(refused[0].starts_with("web|volumes|host-paths|bind mount of "), "{refused:?}");
    assert!(refused[0].contains("(which resolves to `/`) is outside the allowed host folders"), "{refused:?}");
}

#[test]
fn bind_roots_see_through_dot_dot() {
    let roots = vec![std::path::PathBuf::from("/srv/tlo")];
    assert!(under_any(Path::new("/srv/tlo/data"), &roots));
    assert!(under_any(Path::new("/srv/tlo"), &roots));
    assert!(!under_any(Path::new("/srv/tlo-other/data"), &roots));
    assert!(!under_any(Path::new("/srv/tlo/../other"), &roots));
    assert!(!under_any(Path::new("relative"), &roots));
}

#[test]
fn swarm_rules_cap_replicas_and_require_placement() {
    let config: PolicyConfig = serde_yaml::from_str(
        "rules: [{name: cluster, max_replicas: 3, placement_constraints: ['node.labels.team == shop']}]",
    )
    .unwrap();
    let stack = |deploy: &str| {
        crate::descriptor::compose::test_stack(
            &format!("services:\n  web:\n    image: app:1\n    deploy: {deploy}\n"),
            "p",
        )
    };
    let keys = |deploy: &str| -> Vec<String> {
        check(&config, &stack(deploy), "x", "default")
            .into_iter()
            .map(|v| format!("{}: {}", v.key, v.message))
            .collect()
    };
    assert!(keys("{replicas: 3, placement: {constraints: ['node.labels.team==shop']}}").is_empty());
    let found = keys("{replicas: 5}");
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(found[0].contains("5 replicas; at most 3"), "{found:?}");
    assert!(found[1].contains("`node.labels.team == shop` is required"), "{found:?}");
}

#[test]
fn bind_roots_cover_secret_and_config_files() {
    let (_dir, root) = roots_folder();
    let rule = config(&format!("rules: [{{name: host-paths, bind_roots: ['{}']}}]", root.display()));
    let files = |secret: &str, config: &str| {
        format!(
            "services:\n  web:\n    image: app:1\n    secrets: [token]\n    configs: [site]\n\
             secrets:\n  token: {{file: '{secret}'}}\nconfigs:\n  site: {{file: '{config}'}}\n"
        )
    };
    let inside = root.join("data/token").display().to_string();
    assert!(found(&rule, &files(&inside, &inside)).is_empty());
    let refused = found(&rule, &files("/var/run/docker.sock", &root.join("escape/etc/passwd").display().to_string()));
    assert_eq!(refused.len(), 2, "{refused:?}");
    assert!(
        refused[0].starts_with("web|secrets|host-paths|secret `token` reads the host file `/var/run/docker.sock`"),
        "{refused:?}"
    );
    // `/var/run` is often a link to `/run`: the message then says so.
    assert!(refused[0].contains("outside the allowed host folders (allowed roots: "), "{refused:?}");
    assert!(refused[1].starts_with("web|configs|host-paths|config `site` reads the host file"), "{refused:?}");
    assert!(refused[1].contains("which resolves to `/etc/passwd`"), "{refused:?}");
    // No `bind_roots`, no check; an empty list forbids host files.
    assert!(found(&config("rules: [{name: open}]"), &files("/var/run/docker.sock", "/etc/passwd")).is_empty());
    let none = found(&config("rules: [{name: closed, bind_roots: []}]"), &files(&inside, &inside));
    assert_eq!(none.len(), 2, "{none:?}");
    assert!(none[0].contains("no host folder may be mounted here"), "{none:?}");
}

#[test]
fn bind_roots_cover_volumes_that_bind_a_host_folder() {
    let (_dir, root) = roots_folder();
    let rule = config(&format!("rules: [{{name: host-paths, bind_roots: ['{}']}}]", root.display()));
    let volume = |opts: &str, mounted: bool| {
        let mount = if mounted { "\n    volumes: ['data:/data']" } else { "" };
        format!("services:\n  web:\n    image: app:1{mount}\nvolumes:\n  data: {{driver_opts: {opts}}}\n")
    };
    let inside = format!("{{type: none, o: bind, device: '{}'}}", root.join("data").display());
    assert!(found(&rule, &volume(&inside, true)).is_empty());
    // Not a bind: an NFS export is not a host path.
    assert!(found(&rule, &volume("{type: nfs, o: 'addr=10.0.0.1,rw', device: ':/export'}", true)).is_empty());
    let refused = found(&rule, &volume("{type: none, o: bind, device: /}", true));
    assert_eq!(
        refused,
        ["web|volumes|host-paths|named volume `data` is a bind mount (`driver_opts.device`) of `/`, outside \
          the allowed host folders (allowed roots: "
            .to_string()
            + &root.display().to_string()
            + ")"]
    );
    let other = found(&rule, &volume("{o: 'rbind,ro', device: /etc}", true));
    assert_eq!(other.len(), 1, "{other:?}");
    let unmounted = found(&rule, &volume("{type: none, o: bind, device: /}", false));
    assert_eq!(unmounted.len(), 1, "{unmounted:?}");
    assert!(
        unmounted[0].starts_with("volumes|volumes.data.driver_opts.device|host-paths|named volume `data`"),
        "{unmounted:?}"
    );
}

#[test]
fn namespaces_are_joined_only_within_the_stack() {
    let rule = config("rules: [{name: host-safety, privileges: []}]");
    let join = |mode: &str| {
        format!(
            "services:\n  web:\n    image: app:1\n    network_mode: '{mode}'\n  db:\n    image: db:1\n  \
             cache:\n    image: redis\n    container_name: p-cache\n"
        )
    };
    for ours in ["service:db", "container:p-db-1", "container:p-db-2", "container:p-cache", "bridge", "none"] {
        assert!(found(&rule, &join(ours)).is_empty(), "{ours}");
        assert!(foreign_namespaces(&stack(&join(ours))).is_empty(), "{ours}");
    }
    for theirs in ["container:shop-db-1", "container:p-cache-1", "container:p-db-0", "container:p-nothing-1"] {
        let refused = found(&rule, &join(theirs));
        assert_eq!(refused.len(), 1, "{theirs}: {refused:?}");
        assert!(
            refused[0].starts_with(&format!("web|network_mode|host-safety|`network_mode: {theirs}` joins container")),
            "{refused:?}"
        );
        assert!(refused[0].contains("which is not a container of this stack"), "{refused:?}");
        let plain = foreign_namespaces(&stack(&join(theirs)));
        assert_eq!(plain.len(), 1);
        assert_eq!(
            (plain[0].service.as_str(), plain[0].key.as_str(), plain[0].rule.as_str()),
            ("web", "network_mode", "namespace")
        );
    }
    let pid =
        "services:\n  web:\n    image: app:1\n    pid: 'container:billing-app-1'\n    ipc: 'container:billing-app-1'\n";
    let refused: Vec<String> = foreign_namespaces(&stack(pid)).iter().map(|v| v.key.clone()).collect();
    assert_eq!(refused, ["pid", "ipc"]);
    // No `privileges` key, nothing refused by the rules.
    assert!(found(&config("rules: [{name: open}]"), &join("container:shop-db-1")).is_empty());
}

#[test]
fn security_options_that_lift_confinement_are_privileges() {
    let text = "services:\n  web:\n    image: app:1\n    security_opt: ['no-new-privileges:true', \
                'seccomp=unconfined', 'apparmor:unconfined', 'label=disable', 'label:disable', \
                'systempaths=unconfined', 'no-new-privileges=false', 'label=level:s0:c100,c200']\n";
    let refused = found(&config("rules: [{name: host-safety, privileges: [cap_add]}]"), text);
    assert_eq!(refused.len(), 6, "{refused:?}");
    assert_eq!(
        refused[0],
        "web|security_opt|host-safety|security option `seccomp=unconfined` is not allowed (privilege \
         `seccomp_unconfined`); ask the platform team to allow it in the rule's `privileges`"
    );
    for (line, name) in refused.iter().zip([
        "seccomp_unconfined",
        "apparmor_unconfined",
        "label_disable",
        "label_disable",
        "systempaths_unconfined",
        "no_new_privileges_false",
    ]) {
        assert!(line.contains(&format!("(privilege `{name}`)")), "{line}");
    }
    let allowed = config(
        "rules: [{name: host-safety, privileges: [seccomp_unconfined, apparmor_unconfined, label_disable, \
         systempaths_unconfined, no_new_privileges_false]}]",
    );
    assert!(found(&allowed, text).is_empty());
}

#[test]
fn devices_are_a_privilege() {
    let text = "services:\n  web:\n    image: app:1\n    devices: ['/dev/kvm:/dev/kvm']\n";
    assert!(found(&config("rules: [{name: host-safety, privileges: [devices]}]"), text).is_empty());
    let refused = found(&config("rules: [{name: host-safety, privileges: []}]"), text);
    assert_eq!(refused.len(), 1);
    assert!(refused[0].starts_with("web|devices|host-safety|host devices are not allowed"), "{refused:?}");
}

#[test]
fn zero_is_not_a_limit() {
    let rule = config("rules: [{name: production, limits: {required: true}}]");
    let limited = |cpus: &str, memory: &str| {
        format!("services:\n  web:\n    image: app:1\n    cpus: {cpus}\n    mem_limit: {memory}\n")
    };
    assert!(found(&rule, &limited("0.5", "256m")).is_empty());
    let refused = found(&rule, &limited("0", "0"));
    assert_eq!(
        refused,
        [
            "web|cpus|production|`cpus: 0` is not a limit (0 or less means unlimited); a positive CPU limit is \
             required",
            "web|mem_limit|production|a memory limit of 0 bytes is not a limit (0 or less means unlimited); a \
             positive memory limit is required",
        ]
    );
    // The loader refuses negative values; the model could still carry them.
    let mut negative = stack(&limited("1", "256m"));
    let web = negative.services.get_mut("web").unwrap();
    (web.resources.cpus, web.resources.memory) = (Some(-1.0), Some(-1));
    let refused: Vec<String> = check(&rule, &negative, "x", "default").into_iter().map(|v| v.message).collect();
    assert_eq!(refused.len(), 2, "{refused:?}");
    assert!(refused[0].starts_with("`cpus: -1` is not a limit"), "{refused:?}");
    assert!(refused[1].starts_with("a memory limit of -1 bytes is not a limit"), "{refused:?}");
}

#[test]
fn container_names_stay_in_the_targets_namespace() {
    let ok = stack("services:\n  web:\n    image: app:1\n    container_name: p-web\n  db:\n    image: db:1\n");
    assert!(foreign_container_names(&ok).is_empty());
    let squat = stack("services:\n  web:\n    image: app:1\n    container_name: shop-web-1\n");
    let found = foreign_container_names(&squat);
    assert_eq!(found.len(), 1);
    assert_eq!(
        (found[0].service.as_str(), found[0].key.as_str(), found[0].rule.as_str()),
        ("web", "container_name", "namespace")
    );
    assert_eq!(
        found[0].message,
        "container name `shop-web-1` is outside this target's namespace (names must start with `p-`); rename \
         it to `p-shop-web-1`, or drop `container_name` to get `p-web-1`"
    );
}

/// The attack of each privilege the Compose host keys need: refused without
/// the privilege, allowed with it.
#[test]
fn host_keys_that_widen_a_container_are_privileges() {
    let none = config("rules: [{name: host-safety, privileges: []}]");
    for (keys, key, privilege) in [
        ("userns_mode: host", "userns_mode", "userns_host"),
        ("uts: host", "uts", "uts_host"),
        ("cgroup: host", "cgroup", "cgroup_host"),
        ("cgroup_parent: /system.slice", "cgroup_parent", "cgroup_parent"),
        ("device_cgroup_rules: ['b 8:* rwm']", "device_cgroup_rules", "device_cgroup_rules"),
        ("runtime: runc-unconfined", "runtime", "runtime"),
        ("gpus: all", "gpus", "gpus"),
        (
            "deploy: {resources: {reservations: {devices: [{capabilities: [gpu], count: all}]}}}",
            "deploy.resources.reservations.devices",
            "gpus",
        ),
        ("oom_score_adj: -1000", "oom_score_adj", "oom_score_adj"),
        ("external_links: ['billing-db-1:db']", "external_links", "external_links"),
        ("post_start: [{command: 'mount /dev/sda1 /mnt', privileged: true}]", "post_start", "privileged"),
        ("pre_stop: [{command: 'sh -c x', privileged: true}]", "pre_stop", "privileged"),
    ] {
        let text = format!("services:\n  web:\n    image: app:1\n    {keys}\n");
        let refused = found(&none, &text);
        assert_eq!(refused.len(), 1, "{keys}: {refused:?}");
        assert!(refused[0].starts_with(&format!("web|{key}|host-safety|")), "{keys}: {refused:?}");
        let allowed = config(&format!("rules: [{{name: host-safety, privileges: [{privilege}]}}]"));
        assert!(found(&allowed, &text).is_empty(), "{keys} with `{privilege}`: {:?}", found(&allowed, &text));
    }
    // What does not widen: a positive OOM score, private namespaces, hooks
    // without privileges, links to the stack's own containers.
    let harmless = "services:\n  web:\n    image: app:1\n    oom_score_adj: 500\n    cgroup: private\n    \
                    post_start: [{command: 'true'}]\n    external_links: ['p-db-1:db']\n  db:\n    image: db:1\n";
    assert!(found(&none, harmless).is_empty(), "{:?}", found(&none, harmless));
    // A runtime by name: only that one.
    let gvisor = config("rules: [{name: host-safety, privileges: ['runtime:runsc']}]");
    assert!(found(&gvisor, "services:\n  web:\n    image: app:1\n    runtime: runsc\n").is_empty());
    let other = found(&gvisor, "services:\n  web:\n    image: app:1\n    runtime: kata\n");
    assert!(other[0].contains("runtime `kata` is not allowed (privilege `runtime:kata`)"), "{other:?}");
}

#[test]
fn global_mode_does_not_escape_the_replica_cap() {
    let capped = config("rules: [{name: cluster, max_replicas: 3}]");
    let refused = found(&capped, "services:\n  agent:\n    image: app:1\n    deploy: {mode: global}\n");
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert!(
        refused[0].starts_with("agent|deploy.mode|cluster|`mode: global` runs a task on every node"),
        "{refused:?}"
    );
    assert!(found(&capped, "services:\n  agent:\n    image: app:1\n    deploy: {mode: replicated}\n").is_empty());
    let uncapped = config("rules: [{name: cluster}]");
    assert!(found(&uncapped, "services:\n  agent:\n    image: app:1\n    deploy: {mode: global}\n").is_empty());
}
