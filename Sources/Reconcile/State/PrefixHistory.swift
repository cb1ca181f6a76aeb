import Configuration
import Foundation
import Packet
import Translator

/// Which NAT64 prefixes a gateway still owes its clients. Clients learn the
/// prefix from DNS64 answers and PREF64 options and keep it for their TTL
/// and lifetime, so a changed prefix cannot simply be dropped: the old one
/// is kept (routes, nftables, translator) until the longest of those has
/// passed, and its flows stay on it (make before break).
/// Likewise a changed dynamic pool: the hosts holding an address of the old
/// one keep it, with its routes and rules, for the pool's idle timeout.
///
/// Kept in the state directory, so that a reboot in the middle of a
/// renumbering still honours its deadline. Written only by apply.
public struct PrefixHistory: Codable, Sendable, Equatable {
    /// The prefix of the last apply.
    public var current: String
    /// How long a client may keep an answer with `current` (seconds): the
    /// DNS64 TTL cap or the PREF64 lifetime, whichever is longer.
    public var hold: UInt64
    /// When `hold` was lowered: until when the answers handed out before
    /// may still live.
    public var earlierAnswersUntil: UInt64
    /// Older prefixes, oldest first.
    public var retiring: [Retiring<String>]
    /// The dynamic pool of the last apply, and how long its mappings live
    /// without traffic (seconds).
    public var pool: String?
    public var poolHold: UInt64
    /// Older pools, oldest first.
    public var retiringPools: [Retiring<String>]

    static let fileName = "prefixes.json"

    public static func file(in stateDir: String) -> String { (stateDir as NSString).appendingPathComponent(fileName) }

    /// How long answers of `config` may carry its prefix: what its DNS64 and
    /// its 6bed4 router hand out. 0 when neither runs: nobody learnt the
    /// prefix from the gateway, so a new one takes over at once.
    public static func hold(for config: Config) -> UInt64 {
        let dns = config.dns64.enabled ? UInt64(config.dns64.maxTTL.components.seconds) : 0
        // RFC 8781 carries the lifetime in units of 8 s, rounded up.
        let ra = config.sixbedfour.enabled ? (UInt64(config.sixbedfour.pref64Lifetime.components.seconds) + 7) / 8 * 8 : 0
        return max(dns, ra)
    }

    /// Beyond the hold: the old daemon hands out the old prefix until its
    /// parts have stopped, a moment after apply.
    static let margin: UInt64 = 5

    /// The history after applying `config` at `now`: a changed prefix starts
    /// retiring, expired ones are forgotten, and a prefix that comes back is
    /// current again rather than retiring.
    public static func next(after previous: PrefixHistory?, config: Config, now: UInt64) -> PrefixHistory {
        let prefix = config.prefix.description, hold = hold(for: config)
        let pool = config.nat64.enabled ? config.nat64.pool4 : nil, poolHold = UInt64(config.nat64.poolIdleTimeout.components.seconds)
        var pools = previous?.retiringPools.filter { $0.isActive(at: now) && $0.value != pool?.description } ?? []
        if let old = previous?.pool, old != pool?.description, let p = previous, p.poolHold > 0 {
            pools.append(Retiring(old, until: now + p.poolHold))
        }
        // An old pool whose addresses the new config gives to servers (EAM)
        // or to the translator's errors cannot be kept beside them.
        let taken = config.nat64.eam.map(\.ipv4) + [config.nat64.rfc6791Pool].compactMap { $0 }
            + [config.nat64.address4].compactMap { $0 }.map { IPv4Prefix(address: $0, length: 32) }
        // And without a pool, no translator keeps mappings of an old one.
        pools.removeAll { r in pool == nil || (try? IPv4Prefix.parse(r.value)).map { old in taken.contains { $0.overlaps(old) } } ?? true }
        guard let previous else {
            return PrefixHistory(current: prefix, hold: hold, earlierAnswersUntil: 0, retiring: [], pool: pool?.description, poolHold: poolHold,
                                 retiringPools: [])
        }
        var retiring = previous.retiring.filter { $0.isActive(at: now) && $0.value != prefix }
        var earlier = previous.earlierAnswersUntil > now ? previous.earlierAnswersUntil : 0
        if previous.current != prefix {
            let until = max(previous.hold > 0 ? now + previous.hold + margin : now, earlier)
            if until > now { retiring.append(Retiring(previous.current, until: until)) }
            earlier = 0
        } else if hold < previous.hold {
            earlier = max(earlier, now + previous.hold)
        }
        return PrefixHistory(current: prefix, hold: hold, earlierAnswersUntil: earlier, retiring: retiring,
                             pool: pool?.description, poolHold: poolHold, retiringPools: pools)
    }

    /// The retiring prefixes whose deadline has not passed at `now`.
    public func active(at now: UInt64) -> [RetiringPrefix] {
        Self.parsed(retiring, at: now) { (try? IPv6Prefix.parse($0)).flatMap { try? NAT64Prefix($0) } }
    }

    /// The retiring pools whose deadline has not passed at `now`.
    public func activePools(at now: UInt64) -> [Retiring<IPv4Prefix>] {
        Self.parsed(retiringPools, at: now) { try? IPv4Prefix.parse($0) }
    }

    private static func parsed<V>(_ list: [Retiring<String>], at now: UInt64, _ parse: (String) -> V?) -> [Retiring<V>] {
        list.compactMap { r in r.isActive(at: now) ? parse(r.value).map { Retiring($0, until: r.until) } : nil }
    }

    /// What is kept for a renumbering at `now`, one line each, for apply and plan.
    public func keeping(at now: UInt64) -> [String] {
        retiring.filter { $0.isActive(at: now) }.map {
            "keeping prefix \($0.description(now: now)) beside \(current): answers handed out for it may live until then"
        }
            + retiringPools.filter { $0.isActive(at: now) }.map { "keeping pool \($0.description(now: now)) for the hosts that hold its addresses" }
    }

    /// The earliest deadline still ahead at `now`: when the kernel state must change again.
    public func nextDeadline(after now: UInt64) -> UInt64? {
        (retiring + retiringPools).filter { $0.isActive(at: now) }.map(\.until).min()
    }

    /// The history in `stateDir`; nil when there is none (the first apply)
    /// or it cannot be read, which makes the config's prefix current at once.
    public static func load(stateDir: String) -> PrefixHistory? { JSONState.load(file(in: stateDir)) }

    public func save(stateDir: String) throws { try JSONState.save(self, to: Self.file(in: stateDir)) }

    /// The history `config`, applied now, leaves: what plan, apply and audit
    /// compare the kernel with, and what the daemon runs with.
    public static func forApplying(_ config: Config, now: UInt64 = UInt64(time(nil))) -> PrefixHistory {
        next(after: load(stateDir: config.controller.stateDir), config: config, now: now)
    }

    /// The history `config` runs with in the daemon: the saved one when it
    /// was made for this config's prefix and pool (by the apply before the
    /// daemon started), else none.
    public static func running(_ config: Config) -> PrefixHistory? {
        guard let h = load(stateDir: config.controller.stateDir), h.current == config.prefix.description,
              h.pool == (config.nat64.enabled ? config.nat64.pool4 : nil)?.description else { return nil }
        return h
    }
}

extension Retiring where Value: CustomStringConvertible {
    /// "64:ff9b::/96 until 2026-11-29T18:00:00Z (in 100s)".
    public func description(now: UInt64) -> String {
        let when = Date(timeIntervalSince1970: TimeInterval(until)).formatted(.iso8601)
        return "\(value) until \(when) (in \(Duration.seconds(Int64(until) - Int64(min(now, until))).humanReadable))"
    }
}
