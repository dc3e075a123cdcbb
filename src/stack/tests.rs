//! Unit tests of the normalised model.

use super::*;

fn svc() -> Service {
    Service { image: "busybox".into(), ..Default::default() }
}

fn stack(services: Vec<(&str, Service)>) -> Stack {
    Stack {
        name: "p".into(),
        format: Format::Spec,
        services: services.into_iter().map(|(n, s)| (n.to_string(), s)).collect(),
        networks: BTreeMap::new(),
        volumes: BTreeMap::new(),
        warnings: vec![],
        inputs: Default::default(),
    }
}

#[test]
fn levels_put_dependencies_first_and_group_independent_services() {
    let mut web = svc();
    web.depends_on
        .insert("db".into(), Dependency { condition: Condition::ServiceHealthy, required: true, restart: false });
    let mut worker = svc();
    worker.links.push("db:database".into());
    let s = stack(vec![("web", web), ("db", svc()), ("worker", worker), ("cache", svc())]);
    let levels = s.start_levels().unwrap();
    assert_eq!(levels, vec![vec!["cache".to_string(), "db".into()], vec!["web".into(), "worker".into()]]);
}

#[test]
fn a_cycle_is_reported_with_its_members() {
    let mut a = svc();
    a.network_mode = Some("service:b".into());
    let mut b = svc();
    b.volumes_from.push(VolumesFrom { source: VolumesFromSource::Service("a".into()), read_only: false });
    let s = stack(vec![("a", a), ("b", b), ("c", svc())]);
    assert_eq!(s.start_levels().unwrap_err(), vec!["a".to_string(), "b".into()]);
}

#[test]
fn data_containers_and_awaited_services_are_one_shot() {
    let mut app = svc();
    app.volumes_from.push(VolumesFrom { source: VolumesFromSource::Service("app-data".into()), read_only: false });
    app.depends_on.insert(
        "migrate".into(),
        Dependency { condition: Condition::ServiceCompletedSuccessfully, required: true, restart: false },
    );
    let mut always = svc();
    always.restart = Some("always".into());
    let mut other = svc();
    other.volumes_from.push(VolumesFrom { source: VolumesFromSource::Service("always".into()), read_only: false });
    let s = stack(vec![("app", app), ("app-data", svc()), ("migrate", svc()), ("always", always), ("other", other)]);
    assert!(s.is_one_shot("app-data"));
    assert!(s.is_one_shot("migrate"));
    assert!(!s.is_one_shot("app"));
    assert!(!s.is_one_shot("always"), "a restart policy means it is meant to keep running");
    // Only what the descriptor says makes a service wait to exit: a data
    // container may finish, it need not.
    assert!(s.must_finish("migrate"));
    assert!(!s.must_finish("app-data"));
}

#[test]
fn names_follow_compose() {
    let mut fixed = svc();
    fixed.container_name = Some("legacy".into());
    let s = stack(vec![("web", svc()), ("fixed", fixed)]);
    assert_eq!(s.container_name("web"), "p-web-1");
    assert_eq!(s.container_name("fixed"), "legacy");
    assert_eq!(s.network_name("default"), "p_default");
    assert_eq!(s.volume_name("data"), "p_data");
}

#[test]
fn retargeting_renames_the_images_the_stack_builds_without_naming_them() {
    let build = || Build {
        context: "/src".into(),
        dockerfile: "Dockerfile".into(),
        args: BTreeMap::new(),
        target: None,
        cache_from: Vec::new(),
    };
    let built = Service { image: "p-web".into(), build: Some(build()), ..Default::default() };
    let named = Service { image: "team/api:1".into(), build: Some(build()), ..Default::default() };
    let mut s = stack(vec![("web", built), ("api", named), ("db", svc())]);
    s.retarget("shop--prod");
    assert_eq!(s.name, "shop--prod");
    assert_eq!(s.services["web"].image, "shop--prod-web", "Compose names a built image <project>-<service>");
    assert_eq!(s.services["api"].image, "team/api:1", "a named image keeps its name");
    assert_eq!(s.services["db"].image, "busybox");
}
