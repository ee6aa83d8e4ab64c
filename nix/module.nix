# NixOS module for wayback: `services.wayback`. Import it from configuration.nix:
#
#   imports = [ /path/to/wayback/nix/module.nix ];
#   services.wayback = {
#     enable = true;
#     settings = { base_domain = "wayback.example.org"; snapshot_roots = [ "/persist" ]; };
#   };
#
# It installs the CLI, writes /etc/wayback/config.toml and /etc/wayback/profiles/*.toml, and runs the daemon
# (`wayback serve`) as packaging/wayback.service does on Debian. With `verify.enable`, it writes the verify
# jobs to /etc/wayback/verify.d/*.toml and runs `wayback verify --all --since-last` from a timer, as
# packaging/wayback-verify.{service,timer} do (docs/verify.md). wayback starts systemd-nspawn itself, so
# `boot.enableContainers` (NixOS's declarative containers) is neither needed nor touched. See docs/nixos.md.
{
  config,
  lib,
  pkgs,
  ...
}:

let
  cfg = config.services.wayback;
  toml = pkgs.formats.toml { };
  # A profile's `name` defaults to its attribute name.
  profileFile =
    name: profile: toml.generate "wayback-profile-${name}.toml" ({ inherit name; } // profile);
  # Shared by both units of `wayback verify`.
  verifyDoc = [ "man:wayback(1)" ];
in
{
  options.services.wayback = {
    enable = lib.mkEnableOption "wayback, live isolated temporary copies of services from btrfs snapshots (the `wayback` command and its daemon `wayback serve`)";

    package = lib.mkOption {
      type = lib.types.package;
      default = pkgs.callPackage ./package.nix { };
      defaultText = lib.literalExpression "pkgs.callPackage ./nix/package.nix { }";
      description = "The wayback package (the `wayback` command and the daemon).";
    };

    settings = lib.mkOption {
      type = toml.type;
      default = { };
      example = lib.literalExpression ''
        {
          base_domain = "wayback.example.org";
          default_ttl = "4h";
          snapshot_roots = [ "/persist" ];
          host_paths = [ "/srv/app" ];
          proxy.listen = "127.0.0.1:8080";
        }
      '';
      description = ''
        wayback's configuration, written to /etc/wayback/config.toml (the file the CLI and the daemon read
        when neither --config nor $WAYBACK_CONFIG is given). Every key is optional; unknown keys are errors,
        reported by wayback when it starts. See docs/configuration.md for the keys and their defaults.
      '';
    };

    profiles = lib.mkOption {
      type = lib.types.attrsOf toml.type;
      default = { };
      example = lib.literalExpression ''
        {
          wiki = {
            description = "The wiki on the snapshot's /srv/wiki";
            binds = [ "/srv/wiki" "/var/lib/mysql" ];
            http_port = 80;
            process = [
              { name = "mariadb"; user = "mysql"; command = [ "''${pkgs.mariadb}/bin/mariadbd" ]; ready.tcp = 3306; }
              { name = "web"; shell = "exec ''${pkgs.php}/bin/php -S 0.0.0.0:80 -t /srv/wiki"; user = "wwwrun"; }
            ];
          };
        }
      '';
      description = ''
        Profiles, each written to /etc/wayback/profiles/NAME.toml (the default `profile_dirs`), for
        `wayback up --profile NAME`. The attribute name is the profile's `name` unless the profile sets one.
        See docs/profiles.md for the format; `wayback profile from-units UNIT` writes one from a unit.
      '';
    };

    verify = {
      enable = lib.mkEnableOption "`wayback verify` from a timer: every new snapshot of each job brought up, checked and removed (docs/verify.md)";

      jobs = lib.mkOption {
        type = lib.types.attrsOf toml.type;
        default = { };
        example = lib.literalExpression ''
          {
            pg = {
              root = "/persist/.snapshots";
              run.unit = [ "postgresql" ];
              check = [
                { name = "port"; tcp = 5432; }
                { name = "invoices"; sql = "SELECT count(*) FROM invoices"; client = "psql"; min = 1; }
              ];
            };
          }
        '';
        description = ''
          Verify jobs, each written to /etc/wayback/verify.d/NAME.toml (the default `[verify] jobs_dir`); the
          attribute name is the job's name. See docs/verify.md for the format. `[verify]` settings
          (parallel, metrics_file, on_failure) go into `settings.verify`.
        '';
      };

      startAt = lib.mkOption {
        type = lib.types.str;
        default = "*-*-* 05:00:00";
        description = "When the timer runs `wayback verify --all --since-last` (systemd OnCalendar= syntax).";
      };
    };
  };

  config = lib.mkIf cfg.enable {
    environment.systemPackages = [ cfg.package ];

    environment.etc = {
      "wayback/config.toml".source = toml.generate "wayback-config.toml" cfg.settings;
    }
    // lib.mapAttrs' (
      name: profile: lib.nameValuePair "wayback/profiles/${name}.toml" { source = profileFile name profile; }
    ) cfg.profiles
    // lib.mapAttrs' (
      name: job:
      lib.nameValuePair "wayback/verify.d/${name}.toml" {
        source = toml.generate "wayback-verify-${name}.toml" job;
      }
    ) cfg.verify.jobs;

    # The equivalent of packaging/wayback.service.
    systemd.services.wayback = {
      description = "wayback: live, isolated, temporary copies of services from btrfs snapshots";
      documentation = [ "man:wayback(1)" ];
      after = [
        "network.target"
        "local-fs.target"
        "systemd-machined.service"
      ];
      wants = [ "systemd-machined.service" ];
      wantedBy = [ "multi-user.target" ];
      # The daemon reads its configuration when it starts. Restarting it keeps the running instances (their
      # containers are separate processes, KillMode=process): the new daemon adopts them.
      restartTriggers = [ config.environment.etc."wayback/config.toml".source ];

      serviceConfig = {
        Type = "simple";
        ExecStart = "${lib.getExe cfg.package} serve";
        # Instances outlive a restart of the daemon; `wayback down --all` removes them.
        KillMode = "process";
        Restart = "on-failure";
        RestartSec = "2s";
        # /run/wayback holds the control socket, the proxy lock and the route files of running instances:
        # kept across restarts so that the next start can adopt them.
        RuntimeDirectory = "wayback";
        RuntimeDirectoryMode = "0700";
        RuntimeDirectoryPreserve = "yes";
        StateDirectory = "wayback";
        StateDirectoryMode = "0700";
        UMask = "0077";
        # Hardening that keeps wayback working. Nothing that gives the service its own mount namespace
        # (ProtectSystem=, ProtectHome=, PrivateTmp=, ReadOnlyPaths=, ProtectKernel*=, ...): wayback's network
        # namespaces (/run/netns) and clones must be visible to the host and to the `wayback` CLI. No
        # NoNewPrivileges=/MemoryDenyWriteExecute=/RestrictAddressFamilies=: the services in the containers
        # would inherit them (setuid wrappers in /run/wrappers, JITs, raw sockets).
        LockPersonality = true;
        RestrictRealtime = true;
        SystemCallArchitectures = "native";
        ProtectClock = true;
        ProtectHostname = true;
      };
    };

    # The equivalent of packaging/wayback-verify.service and packaging/wayback-verify.timer.
    systemd.services.wayback-verify = lib.mkIf cfg.verify.enable {
      description = "wayback: prove new snapshots restorable (the verify jobs in /etc/wayback/verify.d)";
      documentation = verifyDoc;
      after = [
        "network.target"
        "local-fs.target"
        "systemd-machined.service"
      ];
      wants = [ "systemd-machined.service" ];
      unitConfig.ConditionDirectoryNotEmpty = "/etc/wayback/verify.d";
      serviceConfig = {
        Type = "oneshot";
        # Exit 1 when a check failed: the unit fails, OnFailure= and the [verify] on_failure hook see it.
        ExecStart = "${lib.getExe cfg.package} verify --all --since-last";
        # SIGTERM to wayback only: it stops its runs and removes their instances itself.
        KillMode = "mixed";
        TimeoutStopSec = "5min";
        StateDirectory = "wayback";
        StateDirectoryMode = "0700";
        UMask = "0077";
        Nice = 10;
        IOSchedulingClass = "idle";
        LockPersonality = true;
        RestrictRealtime = true;
        SystemCallArchitectures = "native";
        ProtectClock = true;
        ProtectHostname = true;
      };
    };
    systemd.timers.wayback-verify = lib.mkIf cfg.verify.enable {
      description = "wayback: verify new snapshots daily";
      documentation = verifyDoc;
      wantedBy = [ "timers.target" ];
      timerConfig = {
        OnCalendar = cfg.verify.startAt;
        RandomizedDelaySec = "30min";
        Persistent = true;
      };
    };
  };
}
