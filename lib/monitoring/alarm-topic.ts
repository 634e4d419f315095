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
    const topic = new OwnAccountPublishersTopic(this, 'Topic', { masterKey: key, enforceSSL: true, displayName: 'Restorable backup alarms' });
    // A topic policy replaces SNS's default one: say explicitly that this account's alarms may publish.
    topic.addToResourcePolicy(new iam.PolicyStatement({
      sid: 'CloudWatchAlarmsPublish',
      principals: [new iam.ServicePrincipal('cloudwatch.amazonaws.com')],
      actions: ['sns:Publish'],
      resources: [topic.topicArn],
    }));
    subscribeEmails(this, topic, props.emails ?? [], 'emails');
    this.topic = topic;
    this.encryptionKey = key;
  }
}

/**
 * A topic whose policy lets the publishing services (CloudWatch alarms, EventBridge rules) publish only on behalf of
 * this account's alarms and rules: every statement granting them `sns:Publish`, this construct's and those that
 * targets add with `grantPublish`, gets `aws:SourceAccount` and `aws:SourceArn` conditions. Without them, an alarm
 * or rule of any other account could publish to the topic (a confused deputy).
 */
class OwnAccountPublishersTopic extends sns.Topic {
  public addToResourcePolicy(statement: iam.PolicyStatement): iam.AddToResourcePolicyResult {
    const sourceArn = publisherSourceArn(this, statement);
    if (sourceArn && statement.effect === iam.Effect.ALLOW && !('aws:SourceAccount' in (statement.conditions.StringEquals ?? {}))) {
      statement.addCondition('StringEquals', { 'aws:SourceAccount': Stack.of(this).account });
      statement.addCondition('ArnLike', { 'aws:SourceArn': sourceArn });
    }
    return super.addToResourcePolicy(statement);
  }
}

/** The ARN pattern of what publishes through a statement's service principal, when it is one of the publishers. */
function publisherSourceArn(scope: Construct, statement: iam.PolicyStatement): string | undefined {
  const { account, region, partition } = Stack.of(scope);
  const services = statement.principals.map((principal) => (principal instanceof iam.ServicePrincipal ? principal.service : undefined));
  if (services.length !== 1) return undefined;
  switch (services[0]) {
    case 'cloudwatch.amazonaws.com': return `arn:${partition}:cloudwatch:${region}:${account}:alarm:*`;
    case 'events.amazonaws.com': return `arn:${partition}:events:${region}:${account}:rule/*`;
    default: return undefined;
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
