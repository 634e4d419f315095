/**
 * What a restore-test run starts for each source: its task definition, its role and the agent's command, for the
 * primary copy or the DR copy. The commands are written into the orchestrator's configuration at synth, so a value
 * known only at deployment (a bucket name, the identity secret's ARN) is a `{{NAME}}` placeholder, which the
 * orchestrator fills from its environment.
 */
import { Arn, ArnFormat } from 'aws-cdk-lib';
import { ReportsCopy } from '../contract/names';
import { BackupBucket } from '../store/backup-bucket';
import { ReplicaStore } from '../store/replica-store';
import { RestoreTestCopy, RestoreTestRun } from './restore-test-orchestration';
import { RestoreTestRole } from './restore-test-roles';
import { RestoreTestSourceProps, restoreTestCommand } from './restore-test-source';
import { PITR_TEST_DIR, RestoreTestTask, SCRATCH_DATABASE } from './restore-test-task';

/** A source RestoreTesting tests, with the task definition and the role its tests run with. */
export interface TestedSource extends RestoreTestSourceProps {
  readonly task: RestoreTestTask;
  readonly role: RestoreTestRole;
}

/** The commands' values known only at deployment, as `{{NAME}}` arguments (RestoreTestOrchestrationProps.values). */
const PLACEHOLDERS = { bucket: '{{BUCKET}}', identity: '{{IDENTITY}}', drBucket: '{{DR_BUCKET}}', drIdentity: '{{DR_IDENTITY}}' } as const;

/**
 * The restore tests of one run, in the order the sources were added: of `store` (the primary store, or a vault
 * tested from its own account), or of its DR replica in another region of the same account. With `reports`, the
 * tests report under that subdirectory of restore-tests/ (a vault's, `vault`).
 */
export function restoreTestRuns(tested: readonly TestedSource[], store: BackupBucket, copy: RestoreTestCopy, drReplica?: ReplicaStore,
  reports?: ReportsCopy): RestoreTestRun[] {
  const dr = copy === RestoreTestCopy.DR;
  if (dr && !drReplica) throw new Error('a DR run needs the DR replica');
  const bucket = dr ? drReplica! : store;
  return tested.map((t) => ({
    source: t.source.name,
    taskDefinition: t.task.taskDefinition,
    taskRoleName: t.role.baseName,
    command: restoreTestCommand(t, {
      bucket: dr ? PLACEHOLDERS.drBucket : PLACEHOLDERS.bucket, prefix: bucket.prefix, scratch: t.task.scratch, database: SCRATCH_DATABASE,
      identitySecretArn: dr ? PLACEHOLDERS.drIdentity : PLACEHOLDERS.identity,
      bucketRegion: dr ? drReplica!.region : undefined, reports, pitrDir: t.task.pointInTime ? PITR_TEST_DIR : undefined,
    }),
  }));
}

/**
 * The values of the placeholders, as the orchestrator's environment gives them (`VALUE_{NAME}`): the bucket and
 * identity secret tested, and with a DR replica, its bucket and the secret's replica in its region.
 */
export function commandValues(store: BackupBucket, identitySecretArn: string, drReplica?: ReplicaStore): Record<string, string> {
  return {
    BUCKET: store.bucket.bucketName,
    IDENTITY: identitySecretArn,
    ...(drReplica ? { DR_BUCKET: drReplica.bucket.bucketName, DR_IDENTITY: inRegion(identitySecretArn, drReplica.region) } : {}),
  };
}

/** The same secret's replica in another region: Secrets Manager replicas keep the ARN, with the region changed. */
function inRegion(secretArn: string, region: string): string {
  return Arn.format({ ...Arn.split(secretArn, ArnFormat.COLON_RESOURCE_NAME), region });
}
