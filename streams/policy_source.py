"""Where a partition's first policy comes from: the log's policy in force, or LOYALTY_POLICY where the log has none."""
from __future__ import annotations

from typing import Optional

from projections.policies import PolicySchedule, first_change
from schemas.policy import Policy
from schemas.policy_doc import policy_version


class PolicyConflict(Exception):
    """LOYALTY_POLICY differs from the policy in force in the log, and nobody said which wins."""


def digest_of(version: str) -> str:
    """Return the content digest of a version (`name@digest` or `digest`): equal rules, equal digest."""
    return version.rsplit("@", 1)[-1]


def conflict_line(in_force: str, partitions: list[int], policy_file: str, file_version: str) -> str:
    """Say, in one line, that the file and the log disagree and how to choose."""
    where = f", partitions {partitions}" if partitions else ""
    return (f"the policy in force in the log ({in_force}{where}) differs from LOYALTY_POLICY "
            f"{policy_file} ({file_version}): publish the file (`loyalty policy publish {policy_file} --effective T`), "
            f"or start with --policy-wins log (the log's policy) or --policy-wins file (the file replaces it on "
            f"this worker; `replay --verify` then reports the policy differs)")


def choose_policies(saved: Optional[PolicySchedule], policy: Policy, policy_file: Optional[str],
                    wins: Optional[str]) -> PolicySchedule:
    """Return the policies a loaded partition folds with: what it saved, else the file's or the built-in default."""
    if saved is None:
        return PolicySchedule(first_change(policy, "file" if policy_file else "default"))
    file_version = policy_version(policy)
    if policy_file is None or wins == "log" or digest_of(saved.in_force.version) == file_version:
        return saved
    if wins == "file":
        return saved.enforced(first_change(policy, "file"))
    raise PolicyConflict(conflict_line(saved.in_force.version, [], policy_file, file_version))
