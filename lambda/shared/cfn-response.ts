/**
 * The CloudFormation custom-resource protocol, answered by the handler itself: one PUT of a JSON document
 * to the pre-signed ResponseURL of the event.
 */
import * as http from 'node:http';
import * as https from 'node:https';

export interface CustomResourceEvent {
  readonly RequestType: 'Create' | 'Update' | 'Delete';
  readonly ResponseURL: string;
  readonly StackId: string;
  readonly RequestId: string;
  readonly LogicalResourceId: string;
  readonly ResourceType: string;
  readonly PhysicalResourceId?: string;
  readonly ResourceProperties: Record<string, unknown>;
  readonly OldResourceProperties?: Record<string, unknown>;
}

export interface CustomResourceResponse {
  readonly Status: 'SUCCESS' | 'FAILED';
  readonly Reason?: string;
  readonly PhysicalResourceId: string;
  readonly StackId: string;
  readonly RequestId: string;
  readonly LogicalResourceId: string;
  readonly Data?: Record<string, string>;
}

/** Sends the response; CloudFormation waits for it, so a failure to send is an error worth retrying. */
export function sendResponse(responseUrl: string, response: CustomResourceResponse): Promise<void> {
  const body = JSON.stringify(response);
  const url = new URL(responseUrl);
  // Pre-signed S3 URLs are https; plain http only serves local tests.
  const transport = url.protocol === 'http:' ? http : https;
  return new Promise((resolve, reject) => {
    const request = transport.request(url, {
      method: 'PUT',
      // The URL is signed without a content type, so none may be sent.
      headers: { 'content-type': '', 'content-length': Buffer.byteLength(body) },
    }, (answer) => {
      answer.resume();
      answer.on('end', () => {
        const status = answer.statusCode ?? 0;
        if (status >= 200 && status < 300) resolve();
        else reject(new Error(`CloudFormation response URL answered HTTP ${status}`));
      });
    });
    request.on('error', reject);
    request.end(body);
  });
}
