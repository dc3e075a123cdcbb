//! What reaches the engine for each field of the model.

use super::*;
use crate::stack::{Device, Format, Healthcheck, Mount, Port, ServiceNetwork, Subnet, Ulimit, VolumesFrom};
use std::time::Duration;

fn stack_with(svc: Service) -> Stack {
    Stack {
        name: "shop".into(),
        format: Format::Spec,
        services: [("web".to_string(), svc), ("db".to_string(), Service { image: "db".into(), ..Default::default() })]
            .into_iter()
            .collect(),
        networks: BTreeMap::new(),
        volumes: BTreeMap::new(),
        warnings: vec![],
        inputs: Default::default(),
    }
}

#[test]
fn every_field_reaches_the_create_request() {
    let mut svc = Service { image: "app:1".into(), ..Default::default() };
    svc.command = Some(vec!["run".into()]);
    svc.environment.insert("A".into(), Some("1".into()));
    svc.environment.insert("UNSET".into(), None);
    svc.ports.push(Port {
        target: 80,
        published: Some(8080),
        host_ip: Some("127.0.0.1".into()),
        protocol: "tcp".into(),
    });
    svc.volumes.push(Mount::new(MountKind::Volume, Some("data".into()), "/data", true));
    svc.volumes.push(Mount::new(MountKind::Bind, Some("/srv/x".into()), "/x", false));
    svc.volumes_from.push(VolumesFrom { source: VolumesFromSource::Service("db".into()), read_only: false });
    svc.links.push("db:database".into());
    svc.restart = Some("on-failure:3".into());
    svc.healthcheck = Some(Healthcheck {
        test: vec!["CMD".into(), "true".into()],
        interval: Some(Duration::from_secs(1)),
        timeout: None,
        retries: Some(3),
        start_period: None,
        start_interval: None,
        disable: false,
    });
    svc.resources.cpus = Some(0.5);
    svc.resources.memory = Some(64 << 20);
    let stack = stack_with(svc.clone());
    let body = container_body(&stack, "web", &svc, HashMap::new());
    assert_eq!(body.env, Some(vec!["A=1".to_string()]));
    assert_eq!(body.exposed_ports, Some(vec!["80/tcp".to_string()]));
    let host = body.host_config.unwrap();
    let binding = &host.port_bindings.unwrap()["80/tcp"];
    assert_eq!(binding.as_ref().unwrap()[0].host_port.as_deref(), Some("8080"));
    // A named volume goes as a bind string, as Compose sends it.
    assert_eq!(host.binds, Some(vec!["shop_data:/data:ro".to_string(), "/srv/x:/x".to_string()]));
    assert_eq!(host.volumes_from, Some(vec!["shop-db-1:rw".to_string()]));
    // As Compose's getLinks: the alias, `<service>-1` and the container name.
    let links = vec!["shop-db-1:database".to_string(), "shop-db-1:db-1".into(), "shop-db-1:shop-db-1".into()];
    assert_eq!(host.links, Some(links.clone()));
    let endpoints = body.networking_config.unwrap().endpoints_config.unwrap();
    assert_eq!(endpoints["shop_default"].links, Some(links), "the endpoint carries them too, as in Compose");
    assert_eq!(host.network_mode.as_deref(), Some("shop_default"));
    assert_eq!(host.restart_policy.unwrap().maximum_retry_count, Some(3));
    assert_eq!(host.nano_cpus, Some(500_000_000));
    assert_eq!(body.healthcheck.unwrap().interval, Some(1_000_000_000));
}

#[test]
fn every_kernel_and_namespace_field_reaches_the_host_config() {
    let mut svc = Service { image: "app:1".into(), ..Default::default() };
    svc.init = Some(true);
    svc.read_only = true;
    svc.cap_add = vec!["NET_ADMIN".into()];
    svc.cap_drop = vec!["ALL".into()];
    svc.devices.push(Device { source: "/dev/fuse".into(), target: "/dev/fuse".into(), permissions: "rw".into() });
    svc.dns = vec!["1.1.1.1".into()];
    svc.dns_search = vec!["example.com".into()];
    svc.dns_opt = vec!["ndots:2".into()];
    svc.sysctls.insert("net.core.somaxconn".into(), "1024".into());
    svc.ulimits.insert("nofile".into(), Ulimit { soft: 20000, hard: 40000 });
    svc.shm_size = Some(64 << 20);
    svc.security_opt = vec!["no-new-privileges:true".into()];
    svc.pid = Some("host".into());
    svc.ipc = Some("service:db".into());
    let stack = stack_with(svc.clone());
    let host = container_body(&stack, "web", &svc, HashMap::new()).host_config.unwrap();
    assert_eq!(host.init, Some(true));
    assert_eq!(host.readonly_rootfs, Some(true));
    assert_eq!(host.cap_add, Some(vec!["NET_ADMIN".to_string()]));
    assert_eq!(host.cap_drop, Some(vec!["ALL".to_string()]));
    let device = &host.devices.unwrap()[0];
    assert_eq!(
        (device.path_on_host.as_deref(), device.path_in_container.as_deref(), device.cgroup_permissions.as_deref()),
        (Some("/dev/fuse"), Some("/dev/fuse"), Some("rw"))
    );
    assert_eq!(host.dns, Some(vec!["1.1.1.1".to_string()]));
    assert_eq!(host.dns_search, Some(vec!["example.com".to_string()]));
    assert_eq!(host.dns_options, Some(vec!["ndots:2".to_string()]));
    assert_eq!(host.sysctls.unwrap()["net.core.somaxconn"], "1024");
    let ulimit = &host.ulimits.unwrap()[0];
    assert_eq!((ulimit.name.as_deref(), ulimit.soft, ulimit.hard), (Some("nofile"), Some(20000), Some(40000)));
    assert_eq!(host.shm_size, Some(64 << 20));
    assert_eq!(host.security_opt, Some(vec!["no-new-privileges:true".to_string()]));
    assert_eq!(host.pid_mode.as_deref(), Some("host"));
    assert_eq!(host.ipc_mode.as_deref(), Some("container:shop-db-1"));
}

#[test]
fn mount_options_secrets_and_configs_reach_the_engine() {
    let mut svc = Service { image: "app:1".into(), ..Default::default() };
    let mut bind = Mount::new(MountKind::Bind, Some("/srv/conf".into()), "/conf", true);
    bind.selinux = Some("z".into());
    bind.propagation = Some("rslave".into());
    let mut volume = Mount::new(MountKind::Volume, Some("data".into()), "/data", false);
    volume.nocopy = true;
    volume.subpath = Some("sub".into());
    let mut tmpfs = Mount::new(MountKind::Tmpfs, None, "/run", false);
    tmpfs.tmpfs_size = Some(1024);
    tmpfs.tmpfs_mode = Some(0o1777);
    tmpfs.tmpfs_flags = vec!["noexec".into()];
    svc.volumes = vec![bind, volume, tmpfs];
    let file = |name: &str, source: FileSource, target: &str| FileMount {
        name: name.into(),
        source,
        target: target.into(),
        uid: Some("1005".into()),
        gid: None,
        mode: Some(0o440),
    };
    svc.secrets.push(file("cert", FileSource::File("/srv/cert.pem".into()), "/run/secrets/cert"));
    svc.secrets.push(file(
        "token",
        FileSource::Environment { variable: "TOKEN".into(), value: "s3cret".into() },
        "/run/secrets/token",
    ));
    svc.configs.push(file("motd", FileSource::Content("hello".into()), "/etc/motd"));
    svc.profiles = vec!["debug".into()];
    let stack = stack_with(svc.clone());
    let hash = crate::plan::config_hash(&stack, "web", &svc);
    let labels = container_labels(&stack, "web", &svc, &hash, &BTreeMap::new());
    assert_eq!(labels[LABEL_PROFILES], "debug");
    let host = container_body(&stack, "web", &svc, labels).host_config.unwrap();
    assert_eq!(host.binds, Some(vec!["/srv/conf:/conf:ro,z,rslave".to_string()]));
    let mounts = host.mounts.unwrap();
    let options = mounts[0].volume_options.as_ref().unwrap();
    assert_eq!((options.no_copy, options.subpath.as_deref()), (Some(true), Some("sub")));
    assert_eq!(host.tmpfs.unwrap()["/run"], "size=1024,mode=1777,noexec");
    assert_eq!(mounts[1].typ, Some(MountType::BIND));
    assert_eq!(
        (mounts[1].source.as_deref(), mounts[1].target.as_deref(), mounts[1].read_only),
        (Some("/srv/cert.pem"), Some("/run/secrets/cert"), Some(true))
    );
    assert_eq!(mounts.len(), 2, "inline files are not mounts");

    let archive = inline_files_archive(&svc).unwrap();
    let mut entries = tar::Archive::new(archive.as_slice());
    let mut seen = Vec::new();
    for entry in entries.entries().unwrap() {
        let mut entry = entry.unwrap();
        let mut text = String::new();
        std::io::Read::read_to_string(&mut entry, &mut text).unwrap();
        let header = entry.header();
        seen.push((entry.path().unwrap().display().to_string(), text, header.mode().unwrap(), header.uid().unwrap()));
    }
    assert_eq!(
        seen,
        vec![
            ("run/secrets/token".to_string(), "s3cret".to_string(), 0o440, 1005),
            ("etc/motd".to_string(), "hello".to_string(), 0o440, 1005),
        ]
    );
    assert!(inline_files_archive(&Service::default()).is_none());
}

#[test]
fn network_ipam_and_flags_reach_the_create_request() {
    let mut stack = stack_with(Service::default());
    let mut net = Network { enable_ipv6: true, attachable: true, ..Default::default() };
    net.subnets.push(Subnet {
        subnet: "172.16.100.0/24".into(),
        gateway: Some("172.16.100.1".into()),
        ip_range: Some("172.16.100.128/25".into()),
        aux_addresses: [("host1".to_string(), "172.16.100.5".to_string())].into_iter().collect(),
    });
    stack.networks.insert("static".into(), net);
    let body = network_body(&stack, "static", &BTreeMap::new());
    assert_eq!((body.enable_ipv6, body.attachable), (Some(true), Some(true)));
    let pool = &body.ipam.unwrap().config.unwrap()[0];
    assert_eq!(pool.gateway.as_deref(), Some("172.16.100.1"));
    assert_eq!(pool.ip_range.as_deref(), Some("172.16.100.128/25"));
    assert_eq!(pool.auxiliary_addresses.as_ref().unwrap()["host1"], "172.16.100.5");
}

#[test]
fn service_network_mode_points_at_the_other_container() {
    let svc = Service { image: "x".into(), network_mode: Some("service:db".into()), ..Default::default() };
    let stack = stack_with(svc.clone());
    let body = container_body(&stack, "web", &svc, HashMap::new());
    assert_eq!(body.host_config.unwrap().network_mode.as_deref(), Some("container:shop-db-1"));
    assert!(body.networking_config.is_none());
}

#[test]
fn the_service_name_and_aliases_resolve_on_each_network() {
    let mut svc = Service { image: "x".into(), ..Default::default() };
    svc.networks.insert("back".into(), ServiceNetwork { aliases: vec!["api".into()], ..Default::default() });
    let e = endpoint("web", &svc, "back");
    assert_eq!(e.aliases, Some(vec!["web".to_string(), "api".into()]));
}

#[test]
fn every_compose_host_key_reaches_the_create_request() {
    use crate::stack::{BlkioConfig, DeviceRequest, ThrottleDevice, WeightDevice};
    let mut svc = Service { image: "app:1".into(), ..Default::default() };
    svc.ports.push(Port { target: 80, published: None, host_ip: None, protocol: "tcp".into() });
    svc.expose = vec!["80".into(), "3000".into(), "9000-9002/udp".into()];
    svc.cpu_shares = Some(512);
    svc.cpuset = Some("0-1".into());
    svc.cpu_quota = Some(50_000);
    svc.cpu_period = Some(100_000);
    svc.cpu_rt_period = Some(1_000_000);
    svc.cpu_rt_runtime = Some(950_000);
    svc.memswap_limit = Some(-1);
    svc.mem_swappiness = Some(10);
    svc.oom_score_adj = Some(-100);
    svc.storage_opt.insert("size".into(), "20G".into());
    svc.blkio_config = Some(BlkioConfig {
        weight: Some(300),
        weight_device: vec![WeightDevice { path: "/dev/sda".into(), weight: 400 }],
        device_read_bps: vec![ThrottleDevice { path: "/dev/sda".into(), rate: 1 << 20 }],
        device_write_iops: vec![ThrottleDevice { path: "/dev/sdb".into(), rate: 30 }],
        ..Default::default()
    });
    svc.device_cgroup_rules = vec!["c 1:3 mr".into()];
    svc.cgroup_parent = Some("m-executor".into());
    svc.cgroup = Some("host".into());
    svc.mac_address = Some("02:42:ac:11:00:02".into());
    svc.platform = Some("linux/amd64".into());
    svc.gpus = vec![DeviceRequest { count: Some(-1), capabilities: vec!["gpu".into()], ..Default::default() }];
    svc.device_requests = vec![DeviceRequest {
        driver: Some("nvidia".into()),
        device_ids: vec!["0".into()],
        capabilities: vec!["gpu".into(), "utility".into()],
        ..Default::default()
    }];
    svc.group_add = vec!["mail".into()];
    svc.userns_mode = Some("host".into());
    svc.uts = Some("host".into());
    svc.domainname = Some("example.com".into());
    svc.runtime = Some("runsc".into());
    svc.external_links = vec!["redis_1".into(), "legacy-db:db".into()];
    svc.annotations.insert("com.example.a".into(), "b".into());
    svc.volume_driver = Some("local".into());
    let stack = stack_with(svc.clone());
    let body = container_body(&stack, "web", &svc, HashMap::new());
    assert_eq!(
        body.exposed_ports,
        Some(["80/tcp", "3000/tcp", "9000/udp", "9001/udp", "9002/udp"].map(String::from).to_vec()),
        "published, then exposed ports, each once"
    );
    assert_eq!(body.domainname.as_deref(), Some("example.com"));
    let endpoints = body.networking_config.clone().unwrap().endpoints_config.unwrap();
    assert_eq!(endpoints["shop_default"].mac_address.as_deref(), Some("02:42:ac:11:00:02"));
    let host = body.host_config.unwrap();
    assert_eq!((host.cpu_shares, host.cpuset_cpus.as_deref()), (Some(512), Some("0-1")));
    assert_eq!((host.cpu_quota, host.cpu_period), (Some(50_000), Some(100_000)));
    assert_eq!((host.cpu_realtime_period, host.cpu_realtime_runtime), (Some(1_000_000), Some(950_000)));
    assert_eq!((host.memory_swap, host.memory_swappiness, host.oom_score_adj), (Some(-1), Some(10), Some(-100)));
    assert_eq!(host.storage_opt.unwrap()["size"], "20G");
    assert_eq!(host.blkio_weight, Some(300));
    assert_eq!(host.blkio_weight_device.unwrap()[0].weight, Some(400));
    assert_eq!(host.blkio_device_read_bps.unwrap()[0].rate, Some(1 << 20));
    assert_eq!(host.blkio_device_write_iops.unwrap()[0].path.as_deref(), Some("/dev/sdb"));
    assert_eq!(host.device_cgroup_rules, Some(vec!["c 1:3 mr".to_string()]));
    assert_eq!(host.cgroup_parent.as_deref(), Some("m-executor"));
    assert_eq!(host.cgroupns_mode, Some(HostConfigCgroupnsModeEnum::HOST));
    let requests = host.device_requests.unwrap();
    assert_eq!((requests[0].count, requests[0].capabilities.clone()), (Some(-1), Some(vec![vec!["gpu".to_string()]])));
    assert_eq!(requests[1].driver.as_deref(), Some("nvidia"));
    assert_eq!(requests[1].device_ids, Some(vec!["0".to_string()]));
    assert_eq!(requests[1].capabilities, Some(vec![vec!["gpu".to_string(), "utility".to_string()]]));
    assert_eq!(host.group_add, Some(vec!["mail".to_string()]));
    assert_eq!((host.userns_mode.as_deref(), host.uts_mode.as_deref()), (Some("host"), Some("host")));
    assert_eq!(host.runtime.as_deref(), Some("runsc"));
    assert_eq!(host.links, Some(vec!["redis_1:redis_1".to_string(), "legacy-db:db".to_string()]));
    assert_eq!(host.annotations.unwrap()["com.example.a"], "b");
    assert_eq!(host.volume_driver.as_deref(), Some("local"));
}

#[test]
fn selinux_labels_on_named_volumes_are_sent_as_compose_sends_them() {
    let mut svc = Service { image: "app:1".into(), ..Default::default() };
    let mut volume = Mount::new(MountKind::Volume, Some("data".into()), "/data", false);
    volume.selinux = Some("Z".into());
    let mut bind = Mount::new(MountKind::Bind, Some("/srv/conf".into()), "/conf", true);
    bind.selinux = Some("Z".into());
    svc.volumes = vec![volume, bind];
    let stack = stack_with(svc.clone());
    let host = container_body(&stack, "web", &svc, HashMap::new()).host_config.unwrap();
    assert_eq!(
        host.binds,
        Some(vec!["shop_data:/data:rw,Z".to_string(), "/srv/conf:/conf:ro,Z".to_string()]),
        "named volumes and bind mounts go as bind strings with their relabel option (Compose's toBindString)"
    );
}
