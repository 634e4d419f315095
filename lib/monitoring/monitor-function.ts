import { Duration } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { lambdaAsset } from '../shared/package-root';
import { BackupBucket } from '../store/backup-bucket';
import { METRIC_NAMESPACE } from '../contract/metrics';
import { NODE22_RUNTIME_REASON, acknowledgeNag, acknowledgeWildcardAction } from '../shared/nag';

export interface MonitorFunctionProps {
  /** The handler's folder under assets/lambda (bundled from lambda/<name> by `npm run bundle`). */
  readonly handlerName: string;
  readonly description: string;
  /** The store it reads: read-only access to every source's objects, and the store's settings in its environment. */
  readonly store: BackupBucket;
  /** Where it reports findings. */
  readonly topic: sns.ITopic;
  /** Settings of the handler, beside the bucket, prefix and topic. */
  readonly environment: Record<string, string>;
  readonly timeout: Duration;
  /**
   * Where an event goes that the function still failed on after Lambda's retries.
   * @default - no dead-letter queue: the event is dropped
   */
  readonly deadLetterQueue?: sqs.IQueue;
}

/**
 * A monitoring Lambda with least privilege: read the store (never write), put metrics only into the
 * Restorable namespace, publish to the alarm topic, and log to its own log group.
 */
export class MonitorFunction extends Construct {
  public readonly function: lambda.Function;

  constructor(scope: Construct, id: string, props: MonitorFunctionProps) {
    super(scope, id);
    const asset = lambdaAsset(this, props.handlerName);
    const logGroup = new logs.LogGroup(this, 'Logs', { retention: logs.RetentionDays.THREE_MONTHS });
    const role = new iam.Role(this, 'Role', { assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'), description: props.description });
    logGroup.grantWrite(role);
    props.store.grantMonitorRead(role);
    role.addToPolicy(new iam.PolicyStatement({
      actions: ['cloudwatch:PutMetricData'],
      resources: ['*'],
      conditions: { StringEquals: { 'cloudwatch:namespace': METRIC_NAMESPACE } },
    }));
    acknowledgeNag(role, 'IAM5[Resource::*]', `cloudwatch:PutMetricData has no resource-level permissions; the cloudwatch:namespace condition limits it to the ${METRIC_NAMESPACE} namespace`);
    props.topic.grantPublish(role);
    acknowledgeWildcardAction(role, 'kms:GenerateDataKey*', 'Publishing to the KMS-encrypted alarm topic needs a data key from the topic\'s key; CDK grants GenerateDataKey* on that one key only');

    this.function = new lambda.Function(this, 'Function', {
      description: props.description,
      runtime: lambda.Runtime.NODEJS_22_X,
      handler: 'index.handler',
      code: lambda.Code.fromAsset(asset),
      role,
      logGroup,
      timeout: props.timeout,
      memorySize: 256,
      deadLetterQueue: props.deadLetterQueue,
      environment: {
        BUCKET_NAME: props.store.bucket.bucketName,
        KEY_PREFIX: props.store.prefix,
        TOPIC_ARN: props.topic.topicArn,
        ...props.environment,
      },
    });
    acknowledgeNag(this.function, 'L1', NODE22_RUNTIME_REASON);
  }
}
