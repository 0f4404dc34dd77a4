#!/bin/bash
# dracut module "sealroot": sealroot-prepare, its systemd unit, its
# configuration, the trusted certificates and the kernel modules it needs.
#
# Opt-in: check() returns 255, so the module is only included when asked
# for (dracut.conf.d/50-sealroot.conf: add_dracutmodules+=" sealroot ", or
# `dracut --add sealroot`).
#
# Build-host locations, overridable in any dracut.conf.d snippet:
#   sealroot_prepare=/usr/bin/sealroot-prepare   the static initramfs binary
#   sealroot_certs_dir=/etc/sealroot/certs.d     trusted X.509 certs (PEM or DER:
#                                                *.pem, *.crt, *.cer, *.cert, *.der,
#                                                the names sealroot-prepare reads)
#   sealroot_config=/etc/sealroot/prepare.conf   optional configuration
#   sealroot_unit_dir=$systemdsystemunitdir      sealroot-prepare.service and drop-ins
#   sealroot_ipe_policy=/etc/sealroot/ipe/policy.p7s   optional signed IPE policy
#                                                (`sealroot ipe sign`, docs/ipe.md)
# The certificates, the configuration and the IPE policy are policy: they
# are copied into the image exactly, to the same paths (/etc/sealroot/...).
# Private keys are refused, and so is an unsigned IPE policy.
#
# An initramfs with this module boots sealed roots only: sealroot-prepare
# runs on every boot (no selector is an error), ostree-prepare-root,
# composefs-setup-root and bootc-root-setup act only if it stood down as
# prepare.conf allows
# ([boot] required = no), and initrd-switch-root.service switches only into
# what sealroot-prepare mounted (drop-in: sealroot-prepare --check-switch-root).

# The file names sealroot-prepare reads from certs.d (src/crypto/cert.rs,
# cert_files_in(): CERT_EXTENSIONS); tests check that the lists agree.
sealroot_cert_extensions=(pem crt cer cert der)

# The drop-ins installed next to the unit: who may act in its slot, and the
# switch-root gate.
sealroot_dropins=(ostree-prepare-root composefs-setup-root bootc-root-setup initrd-switch-root)

sealroot_defaults() {
    : "${sealroot_prepare:=/usr/bin/sealroot-prepare}"
    : "${sealroot_certs_dir:=/etc/sealroot/certs.d}"
    : "${sealroot_config:=/etc/sealroot/prepare.conf}"
    : "${sealroot_unit_dir:=${systemdsystemunitdir:-/usr/lib/systemd/system}}"
    : "${sealroot_ipe_policy:=/etc/sealroot/ipe/policy.p7s}"
}

# Whether prepare.conf says `[ipe] required = yes` (or true/1).
sealroot_ipe_required() {
    [[ -f $sealroot_config ]] || return 1
    awk '
        { sub(/(^|[ \t])[#;].*/, "") }
        /^[ \t]*\[/ { gsub(/[][ \t]/, ""); section = $0; next }
        section == "ipe" && $0 ~ /^[ \t]*required[ \t]*=/ {
            v = $0; sub(/^[^=]*=[ \t]*/, "", v); sub(/[ \t]+$/, "", v)
            if (v == "yes" || v == "true" || v == "1") found = 1
        }
        END { exit found ? 0 : 1 }' "$sealroot_config"
}

# The IPE policy, if any, must be signed (DER PKCS#7: the kernel refuses a
# plain-text policy) and hold no key; prepare.conf requiring IPE needs one.
sealroot_ipe_check() {
    if [[ -e $sealroot_ipe_policy ]]; then
        if grep -qa -- "PRIVATE KEY" "$sealroot_ipe_policy"; then
            derror "sealroot: $sealroot_ipe_policy contains a private key; only the signed policy belongs in the initramfs"
            return 1
        fi
        if [[ $(head -c 1 "$sealroot_ipe_policy" | od -An -tx1 | tr -d ' \n') != 30 ]]; then
            derror "sealroot: $sealroot_ipe_policy is not a signed IPE policy (DER PKCS#7); sign it with 'sealroot ipe sign' (the kernel refuses unsigned policies, and so would sealroot-prepare)"
            return 1
        fi
    elif sealroot_ipe_required; then
        derror "sealroot: $sealroot_config says [ipe] required = yes, but there is no $sealroot_ipe_policy (set sealroot_ipe_policy=): every boot would be refused"
        return 1
    fi
}

# Prints the certificates to install, one per line; fails (with the reason
# on stderr) if the directory is missing or empty, or holds a private key.
sealroot_certs() {
    local cert count=0
    if [[ ! -d $sealroot_certs_dir ]]; then
        derror "sealroot: no trusted certificate directory $sealroot_certs_dir: sealroot-prepare would refuse every image (set sealroot_certs_dir=)"
        return 1
    fi
    local names
    names=$(printf '.%s, ' "${sealroot_cert_extensions[@]}")
    names=${names%, }
    for cert in "$sealroot_certs_dir"/*; do
        [[ -f $cert ]] || continue
        if ! sealroot_is_cert_name "$cert"; then
            dwarning "sealroot: skipping $cert (sealroot-prepare reads only files ending in $names)"
            continue
        fi
        if grep -qa -- "PRIVATE KEY" "$cert"; then
            derror "sealroot: $cert contains a private key; only certificates belong in the initramfs"
            return 1
        fi
        printf '%s\n' "$cert"
        count=$((count + 1))
    done
    if ((count == 0)); then
        derror "sealroot: no certificates (*${names//, /, *}) in $sealroot_certs_dir: sealroot-prepare would refuse every image"
        return 1
    fi
}

# Whether FILE's name ends in one of sealroot_cert_extensions.
sealroot_is_cert_name() {
    local ext
    for ext in "${sealroot_cert_extensions[@]}"; do
        [[ $1 == *."$ext" ]] && return 0
    done
    return 1
}

# called by dracut. Everything that can make the image useless or unsafe is
# checked here: dracut ignores install()'s status, but a module the
# configuration asks for (add_dracutmodules) whose check() fails stops the
# build ("Module 'sealroot' cannot be installed").
check() {
    sealroot_defaults
    # sealroot needs systemd in the initramfs (the unit is the integration).
    require_binaries "$systemdutildir"/systemd || return 1
    if [[ ! -x $sealroot_prepare ]]; then
        derror "sealroot: $sealroot_prepare is missing or not executable (set sealroot_prepare= in dracut.conf.d)"
        return 1
    fi
    local unit
    for unit in sealroot-prepare.service "${sealroot_dropins[@]/%/.service.d/50-sealroot.conf}"; do
        if [[ ! -f $sealroot_unit_dir/$unit ]]; then
            derror "sealroot: no $sealroot_unit_dir/$unit (set sealroot_unit_dir=)"
            return 1
        fi
    done
    sealroot_certs >/dev/null || return 1
    sealroot_ipe_check || return 1
    return 255
}

# called by dracut
depends() {
    echo systemd-initrd
    # dracut >= 060 ships emergency.target/.service in a module of its own;
    # older dracut installs them with "systemd".
    local d
    for d in "$dracutbasedir"/modules.d/[0-9][0-9]systemd-emergency; do
        [[ -d $d ]] && echo systemd-emergency
    done
    return 0
}

# called by dracut
installkernel() {
    # composefs = EROFS (metadata image) + overlayfs (verity=require);
    # loop for kernels or setups that cannot mount EROFS from a file.
    # Dependencies (e.g. libcrc32c for erofs) come along via modules.dep.
    hostonly='' instmods erofs overlay loop
}

# Copies the trusted certificates (validated by check()).
sealroot_install_certs() {
    local cert count=0
    inst_dir /etc/sealroot/certs.d
    while read -r cert; do
        inst_simple "$cert" "/etc/sealroot/certs.d/${cert##*/}" || return 1
        count=$((count + 1))
    done < <(sealroot_certs)
    dinfo "sealroot: $count trusted certificate(s) from $sealroot_certs_dir"
}

# called by dracut
install() {
    sealroot_defaults
    local unit=sealroot-prepare.service other
    inst_simple "$sealroot_prepare" /usr/bin/sealroot-prepare || return 1
    inst_simple "$sealroot_unit_dir/$unit" "$systemdsystemunitdir/$unit" || return 1
    # ostree-prepare-root/composefs-setup-root act only when sealroot stood
    # down; the switch root happens only into what sealroot-prepare mounted.
    for other in "${sealroot_dropins[@]}"; do
        inst_simple "$sealroot_unit_dir/$other.service.d/50-sealroot.conf" \
            "$systemdsystemunitdir/$other.service.d/50-sealroot.conf" || return 1
    done
    # systemd.run= (systemd-run-generator) would run any command in the
    # initrd from an editable command line, `systemctl switch-root` included,
    # past the gate. dracut does not install it; make sure nobody did.
    local generator="$initdir$systemdutildir/system-generators/systemd-run-generator"
    if [[ -e $generator ]]; then
        rm -f -- "$generator"
        dinfo "sealroot: removed systemd-run-generator (systemd.run= on the kernel command line would run commands in the initrd)"
    fi
    # Load the filesystems early (systemd-modules-load.service, which the
    # unit is ordered after) instead of relying on on-demand module requests.
    inst_dir /usr/lib/modules-load.d
    printf '# sealroot: composefs = EROFS + overlayfs\nerofs\noverlay\n' \
        >"$initdir/usr/lib/modules-load.d/sealroot.conf"
    $SYSTEMCTL -q --root "$initdir" add-wants initrd-root-fs.target "$unit" || return 1
    if [[ -f $sealroot_config ]]; then
        inst_simple "$sealroot_config" /etc/sealroot/prepare.conf || return 1
    fi
    sealroot_install_certs || return 1
    if [[ -e $sealroot_ipe_policy ]]; then
        inst_simple "$sealroot_ipe_policy" /etc/sealroot/ipe/policy.p7s || return 1
        dinfo "sealroot: IPE policy $sealroot_ipe_policy"
    fi
    # [boot] layout = ostree: sealroot-prepare replaces ostree-prepare-root
    # (whose unit the drop-in keeps from acting) and reads ostree's own
    # prepare-root.conf from the initramfs, as ostree's dracut module
    # installs it; copied here too, so the ostree module is not needed.
    if [[ -f $sealroot_config ]] && sealroot_layout_is ostree "$sealroot_config"; then
        local conf
        for conf in /usr/lib/ostree/prepare-root.conf /etc/ostree/prepare-root.conf; do
            if [[ -f $conf ]]; then
                inst_simple "$conf" "$conf" || return 1
            fi
        done
    fi
    # [boot] layout = composefs-rs: sealroot-prepare replaces
    # composefs-setup-root / bootc's initramfs-setup and, like them, reads
    # the image's setup-root-conf.toml from the initramfs (bootc's 51bootc
    # module copies the build root's; so does this one).
    local cfs_conf=/usr/lib/composefs/setup-root-conf.toml
    if [[ -f $sealroot_config ]] && sealroot_layout_is composefs-rs "$sealroot_config" \
        && [[ -f $cfs_conf ]]; then
        inst_simple "$cfs_conf" "$cfs_conf" || return 1
        dinfo "sealroot: $cfs_conf"
    fi
}

# Whether prepare.conf FILE says `layout = LAYOUT` (in [boot]).
sealroot_layout_is() {
    awk -v want="$1" '
        { sub(/(^|[ \t])[#;].*/, "") }
        /^[[:space:]]*\[/ { section = $0; gsub(/[][[:space:]]/, "", section); next }
        section == "boot" && $0 ~ /^[[:space:]]*layout[[:space:]]*=/ {
            v = $0; sub(/^[^=]*=[[:space:]]*/, "", v); sub(/[[:space:]]+$/, "", v)
            if (v == want) found = 1
        }
        END { exit !found }
    ' "$2"
}
