# NixOS module for wayback: `services.wayback`. Import it from configuration.nix:
#
#   imports = [ /path/to/wayback/nix/module.nix ];
#   services.wayback = {
#     enable = true;
#     settings = { base_domain = "wayback.example.org"; snapshot_roots = [ "/persist" ]; };
#   };
#
# It installs the CLI, writes /etc/wayback/config.toml and /etc/wayback/profiles/*.toml, and runs the daemon
# (`wayback serve`) as packaging/wayback.service does on Debian. wayback starts systemd-nspawn itself, so
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
  };

  config = lib.mkIf cfg.enable {
    environment.systemPackages = [ cfg.package ];

    environment.etc = {
      "wayback/config.toml".source = toml.generate "wayback-config.toml" cfg.settings;
    }
    // lib.mapAttrs' (
      name: profile: lib.nameValuePair "wayback/profiles/${name}.toml" { source = profileFile name profile; }
    ) cfg.profiles;

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
  };
}
