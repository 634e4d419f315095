import { ArnFormat, Names, Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';

export interface RestoreTestLogsProps {
  /** How long the agent's and the scratch server's lines are kept. */
  readonly retention: logs.RetentionDays;
}

/**
 * Where restore tests log: the agent's lines and the scratch server's, which can hold row data (a failed check
 * prints what came back, a server error quotes the statement). A log group of their own, never the backup tasks',
 * kept a short time and encrypted with a key of its own, whose policy lets CloudWatch Logs in this region use it
 * for this log group only.
 */
export class RestoreTestLogs extends Construct {
  public readonly logGroup: logs.LogGroup;
  public readonly key: kms.Key;

  constructor(scope: Construct, id: string, props: RestoreTestLogsProps) {
    super(scope, id);
    const stack = Stack.of(this);
    // Named, so that the key's policy can name it: by reference, the key and the log group would need each other.
    const logGroupName = `/restorable/restore-tests/${Names.uniqueId(scope)}`;
    this.key = new kms.Key(this, 'Key', {
      description: `Encrypts the restore-test logs in ${logGroupName}`,
      enableKeyRotation: true,
    });
    const logGroupArn = stack.formatArn({ service: 'logs', resource: 'log-group', resourceName: logGroupName, arnFormat: ArnFormat.COLON_RESOURCE_NAME });
    this.key.addToResourcePolicy(new iam.PolicyStatement({
      sid: 'CloudWatchLogsOfTheRestoreTestsOnly',
      principals: [new iam.ServicePrincipal(`logs.${stack.region}.amazonaws.com`)],
      actions: ['kms:Encrypt*', 'kms:Decrypt*', 'kms:ReEncrypt*', 'kms:GenerateDataKey*', 'kms:Describe*'],
      resources: ['*'],
      conditions: { ArnEquals: { 'kms:EncryptionContext:aws:logs:arn': logGroupArn } },
    }));
    this.logGroup = new logs.LogGroup(this, 'LogGroup', {
      logGroupName,
      encryptionKey: this.key,
      retention: props.retention,
    }); // created after the key (KmsKeyId refers to it), whose policy is part of the key itself
  }
}
