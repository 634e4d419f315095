import { RemovalPolicy, Stack, Token } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as subscriptions from 'aws-cdk-lib/aws-sns-subscriptions';
import { Construct } from 'constructs';
import { RestorableError } from '../shared/errors';

export interface AlarmTopicProps {
  /**
   * Addresses that receive every alarm and finding by email; each must confirm the subscription once.
   * @default - no subscriptions: subscribe later with `topic.addSubscription(...)`
   */
  readonly emails?: string[];
  /**
   * What happens to the topic's KMS key when it leaves the stack.
   * @default RemovalPolicy.RETAIN
   */
  readonly removalPolicy?: RemovalPolicy;
}

/**
 * Where backup alerts go: an SNS topic encrypted with a customer-managed key (rotation on) whose policy lets
 * CloudWatch alarms and EventBridge rules use it. Without that, an encrypted topic drops their messages
 * silently. Publishing over plain HTTP is denied.
 */
export class AlarmTopic extends Construct {
  public readonly topic: sns.ITopic;
  public readonly encryptionKey: kms.IKey;

  constructor(scope: Construct, id: string, props: AlarmTopicProps = {}) {
    super(scope, id);
    const key = new kms.Key(this, 'Key', {
      description: `Encrypts the backup alarm topic ${this.node.path}`,
      enableKeyRotation: true,
      removalPolicy: props.removalPolicy ?? RemovalPolicy.RETAIN,
    });
    key.addToResourcePolicy(new iam.PolicyStatement({
      sid: 'AlarmPublishersUseTheKey',
      principals: [new iam.ServicePrincipal('cloudwatch.amazonaws.com'), new iam.ServicePrincipal('events.amazonaws.com')],
      actions: ['kms:Decrypt', 'kms:GenerateDataKey*'],
      resources: ['*'],
    }));
    const topic = new sns.Topic(this, 'Topic', { masterKey: key, enforceSSL: true, displayName: 'Restorable backup alarms' });
    // A topic policy replaces SNS's default one: say explicitly that this account's alarms may publish.
    const { account, region, partition } = Stack.of(this);
    topic.addToResourcePolicy(new iam.PolicyStatement({
      sid: 'CloudWatchAlarmsPublish',
      principals: [new iam.ServicePrincipal('cloudwatch.amazonaws.com')],
      actions: ['sns:Publish'],
      resources: [topic.topicArn],
      conditions: {
        StringEquals: { 'aws:SourceAccount': account },
        ArnLike: { 'aws:SourceArn': `arn:${partition}:cloudwatch:${region}:${account}:alarm:*` },
      },
    }));
    subscribeEmails(this, topic, props.emails ?? [], 'emails');
    this.topic = topic;
    this.encryptionKey = key;
  }
}

/** What is wrong with an email address, or undefined when it looks like one; `property` names where it was given. */
export function emailProblem(property: string, email: string): string | undefined {
  if (Token.isUnresolved(email) || /^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(email)) return undefined;
  return `${property}: '${email}' is not an email address; give addresses like 'oncall@example.com'`;
}

/** Subscribes each address to the topic, after checking it looks like one. */
export function subscribeEmails(scope: Construct, topic: sns.ITopic, emails: readonly string[], property: string): void {
  for (const email of emails) {
    const problem = emailProblem(property, email);
    if (problem) throw new RestorableError(scope, problem);
    topic.addSubscription(new subscriptions.EmailSubscription(email));
  }
}
