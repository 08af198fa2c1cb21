# bash completion for tunnelctl(8): commands, options, and the names of
# users, tunnels, listeners, servers and connections, asked from tunnelctl
# itself (--json users list works offline too; the others need the daemon).
# Install as /usr/share/bash-completion/completions/tunnelctl.

# The global options already on the line (--socket, --config), so that the
# names come from the same daemon and state the command will use.
_tunnelctl_globals()
{
    local i
    _tunnelctl_g=()
    for ((i = 1; i < COMP_CWORD; i++)); do
        case "${COMP_WORDS[i]}" in
        --socket | --config)
            if ((i + 1 < COMP_CWORD)); then
                _tunnelctl_g+=("${COMP_WORDS[i]}" "${COMP_WORDS[i + 1]}")
            fi
            ;;
        --socket=* | --config=*) _tunnelctl_g+=("${COMP_WORDS[i]}") ;;
        esac
    done
}

# The values of KEY ("name", "id") in tunnelctl's JSON output of ARGS.
_tunnelctl_json_values()
{
    local key=$1
    shift
    "${COMP_WORDS[0]}" "${_tunnelctl_g[@]}" --timeout 2s --json "$@" 2>/dev/null |
        sed -n 's/^ *"'"$key"'": "\{0,1\}\([A-Za-z0-9._-]*\)"\{0,1\},\{0,1\}$/\1/p'
}

_tunnelctl()
{
    local cur prev cmd sub i
    local commands="status version users add-key rotate-key export-client tunnels bounce
        reload stats conns kill check-config jproxy-keygen help"
    local globals="--socket --config --timeout --json --help --version"
    COMPREPLY=()
    cur=${COMP_WORDS[COMP_CWORD]}
    prev=${COMP_WORDS[COMP_CWORD - 1]}
    _tunnelctl_globals

    # The command: the first word that is neither a global option nor its value.
    for ((i = 1; i < COMP_CWORD; i++)); do
        case "${COMP_WORDS[i]}" in
        --socket | --config | --timeout) ((i++)) ;;
        -*) ;;
        *)
            cmd=${COMP_WORDS[i]}
            if ((i + 1 < COMP_CWORD)); then
                sub=${COMP_WORDS[i + 1]}
            fi
            break
            ;;
        esac
    done

    case "$prev" in
    --socket | --config | --out | --key-file | --key-out | --users-dir)
        COMPREPLY=($(compgen -f -- "$cur"))
        return
        ;;
    --timeout | --grace)
        COMPREPLY=($(compgen -W "500ms 5s 10s 30s 1m 10m 1h 1d" -- "$cur"))
        return
        ;;
    --protocol)
        COMPREPLY=($(compgen -W "wstan jproxy" -- "$cur"))
        return
        ;;
    --user)
        [[ $cmd == jproxy-keygen ]] && return
        COMPREPLY=($(compgen -W "$(_tunnelctl_json_values name users list)" -- "$cur"))
        return
        ;;
    --tunnel)
        COMPREPLY=($(compgen -W "$(_tunnelctl_json_values name tunnels list)" -- "$cur"))
        return
        ;;
    --server | --via) return ;;
    esac

    if [[ -z $cmd ]]; then
        if [[ $cur == -* ]]; then
            COMPREPLY=($(compgen -W "$globals" -- "$cur"))
        else
            COMPREPLY=($(compgen -W "$commands" -- "$cur"))
        fi
        return
    fi

    local opts="--json --help" words=""
    case "$cmd" in
    users)
        if [[ -z $sub ]]; then
            COMPREPLY=($(compgen -W "list add remove" -- "$cur"))
            return
        fi
        case "$sub" in
        add) opts+=" --protocol --out --force --server --via" ;;
        remove)
            opts+=" --kill"
            words=$(_tunnelctl_json_values name users list)
            ;;
        esac
        ;;
    tunnels)
        if [[ -z $sub ]]; then
            COMPREPLY=($(compgen -W "list" -- "$cur"))
            return
        fi
        ;;
    add-key) opts+=" --protocol --out --force --server --via" ;;
    rotate-key)
        opts+=" --grace --out --force --server --via"
        words=$(_tunnelctl_json_values name users list)
        ;;
    export-client)
        opts+=" --server --via --key-file --out --force"
        words=$(_tunnelctl_json_values name users list)
        ;;
    bounce) words=$(_tunnelctl_json_values name status) ;;
    stats) opts+=" --user --tunnel --reset" ;;
    conns) opts+=" --user --tunnel" ;;
    kill) words=$(_tunnelctl_json_values id conns) ;;
    check-config)
        COMPREPLY=($(compgen -W "$opts" -- "$cur"))
        [[ $cur != -* ]] && COMPREPLY=($(compgen -f -- "$cur"))
        return
        ;;
    jproxy-keygen) opts+=" --user --key-out --users-dir --force" ;;
    esac
    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "$opts" -- "$cur"))
    else
        COMPREPLY=($(compgen -W "$words" -- "$cur"))
    fi
}

complete -F _tunnelctl tunnelctl
